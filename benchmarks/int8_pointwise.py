"""A candidate int8 recipe for CNNs that lost, kept so benchmarks/int8_real.py can show why: the text towers'
per-token dynamic int8 carried over to 1x1 convolutions, one activation scale per pixel.

Each chosen ungrouped 1x1 ``Conv`` (NCHW) becomes

    Transpose to NHWC -> x / s (SmoothQuant, s from calibration) -> q = round(L x / max_c |x|) per pixel
    -> MatMulIntegerToFloat(q, W_q) * max_c |x| + bias -> Transpose back to NCHW

with per-output-channel 8-bit weights, and L = 255 (zero point 0) where the input comes from a Clip/Relu (never
negative), else 127 around 128. It breaks ONNX Runtime's blocked-layout (NCHWc) fp32 chain around every
rewritten layer, which is what it loses on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ALPHA = 0.5  # SmoothQuant migration strength, as for the text towers


def _pointwise(model) -> list:
    from onnx import helper

    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for n in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Conv" and n.input[1] in inits and list(inits[n.input[1]].dims)[2:] == [1, 1] \
                and attrs.get("group", 1) == 1:
            out.append(n)
    return out


def _channel_absmax(src: Path, names: list[str], calibration: Sequence[dict[str, np.ndarray]]) -> dict:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(str(src))
    model.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out: dict[str, np.ndarray] = {}
    for batch in calibration:
        x = next(iter(batch.values()))
        for i in range(0, len(x), 8):
            for name, v in zip(names, session.run(names, {session.get_inputs()[0].name: x[i:i + 8]})):
                a = np.abs(v).max(axis=(0, 2, 3))
                out[name] = a if name not in out else np.maximum(out[name], a)
    return out


def per_pixel(share: float) -> Callable[[Path, Path, str, list], None]:
    """The last ``share`` of the 1x1 convolutions (by graph order) in per-pixel dynamic int8."""
    def run(src: Path, dst: Path, network: str, calibration: list) -> None:
        import onnx
        from onnx import helper, numpy_helper

        model = onnx.load(str(src))
        g = model.graph
        inits = {i.name: i for i in g.initializer}
        producer = {o: n for n in g.node for o in n.output}
        convs = _pointwise(model)
        chosen = {id(n) for n in convs[int(len(convs) * (1 - share)):]}
        amax = _channel_absmax(src, [n.input[0] for n in convs], calibration)
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        consts = {"pp_eps": np.array(1e-6, np.float32), "pp_one": np.array(1.0, np.float32),
                  "pp_zp128": np.array(128, np.uint8), "pp_zp0": np.array(0, np.uint8),
                  "pp_127": np.array(127.0, np.float32), "pp_255": np.array(255.0, np.float32),
                  "pp_axes": np.array([-1], np.int64)}
        g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
        nodes = []
        for k, n in enumerate(g.node):
            if id(n) not in chosen:
                nodes.append(n)
                continue
            p, x = f"pp{k}", n.input[0]
            w = numpy_helper.to_array(inits[n.input[1]])[:, :, 0, 0].astype(np.float32)  # (out, in)
            s = np.maximum(amax[x], 1e-5) ** ALPHA / np.maximum(np.abs(w).max(axis=0), 1e-5) ** (1 - ALPHA)
            s = np.maximum(s, np.median(s)).astype(np.float32)  # floored at the median, as in models/quantise.py
            w = w * s[None, :]
            src_op = producer.get(x)
            unsigned = src_op is not None and src_op.op_type in ("Clip", "Relu")
            levels, zp, lv = ("pp_255", "pp_zp0", 255.0) if unsigned else ("pp_127", "pp_zp128", 127.0)
            col = np.maximum(np.abs(w).max(axis=1), 1e-12) / 127
            wq = np.clip(np.round(w / col[:, None]), -127, 127).astype(np.int8)
            g.initializer.extend([
                numpy_helper.from_array((1 / s)[None, None, None, :].astype(np.float32), f"{p}_smooth"),
                numpy_helper.from_array(np.ascontiguousarray(wq.T), f"{p}_w"),
                numpy_helper.from_array((col / lv).astype(np.float32), f"{p}_ws"),
            ])
            head = [helper.make_node("Transpose", [x], [f"{p}_t"], perm=[0, 2, 3, 1]),
                    helper.make_node("Mul", [f"{p}_t", f"{p}_smooth"], [f"{p}_x"])]
            if not unsigned:
                head.append(helper.make_node("Abs", [f"{p}_x"], [f"{p}_abs"]))
            nodes += [
                *head,
                helper.make_node("ReduceMax", [f"{p}_x" if unsigned else f"{p}_abs", "pp_axes"], [f"{p}_max"],
                                 keepdims=1),
                helper.make_node("Max", [f"{p}_max", "pp_eps"], [f"{p}_m"]),
                helper.make_node("Div", [levels, f"{p}_m"], [f"{p}_inv"]),
                helper.make_node("Mul", [f"{p}_x", f"{p}_inv"], [f"{p}_s"]),
                helper.make_node("QuantizeLinear", [f"{p}_s", "pp_one", zp], [f"{p}_q"]),
                helper.make_node("MatMulIntegerToFloat", [f"{p}_q", f"{p}_w", "pp_one", f"{p}_ws", zp], [f"{p}_f"],
                                 domain="com.microsoft"),
                helper.make_node("Mul", [f"{p}_f", f"{p}_m"], [f"{p}_y"]),
            ]
            last = f"{p}_y"
            if len(n.input) > 2 and n.input[2]:
                nodes.append(helper.make_node("Add", [last, n.input[2]], [f"{p}_yb"]))
                last = f"{p}_yb"
            nodes.append(helper.make_node("Transpose", [last], [n.output[0]], perm=[0, 3, 1, 2]))
        del g.node[:]
        g.node.extend(nodes)
        used = {i for n in g.node for i in n.input}
        keep = [t for t in g.initializer if t.name in used]  # the replaced fp32 weights
        del g.initializer[:]
        g.initializer.extend(keep)
        onnx.save(model, str(dst))
    return run
