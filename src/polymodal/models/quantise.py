"""int8 for exported networks: per-token dynamic int8 with SmoothQuant scaling on the matrix products, and
static int8 on a CNN's late pointwise convolutions.

``quantise(src, dst, network, calibration)`` rewrites every matrix product with a constant 2-D weight
(MatMul, and Gemm without transposed/scaled inputs) as

    x  ->  x / s                       SmoothQuant scaling (Xiao et al., ICML 2023), s from calibration
       ->  q = round(127 x / max|x|)   int8 per token: one scale per row of x, computed at run time
       ->  MatMulIntegerToFloat(q, W_q) * max|x|   W_q = round((s W) / w_c) per output column c, 7 bits

and, in a network with at least POINTWISE_MIN ungrouped 1x1 convolutions (a CNN such as lite's
EfficientNet-Lite0), puts the second half of those (graph order: the 14x14 and 7x7 stages at 224 px) in
static QDQ int8 (per-output-channel 8-bit weights, uint8 activations with MinMax ranges from the calibration
batches), which ONNX Runtime fuses into QLinearConv; the few of them whose int8 costs the most, measured one
by one on the calibration batches as the parity gate compares, go back to fp32 until the rest hold (at
most MAX_FP32_CONVS; lite loses one or two). Everything else stays fp32: attention's
activation-by-activation products, norms, the stem, the depthwise and the early pointwise convolutions, a
CLIP ViT's patch embedding. Which layers a network has decides the recipe, not its name.

Why, measured on the real ``lite`` towers (benchmarks/int8_real.py has the table and RESULTS.md the run;
cosines vs fp32 on 400 held-out ImageNet definitions and 140 views of the scikit-image/-learn photos):

- all-MiniLM-L6-v2, ONNX Runtime's ``quantize_dynamic``: per-tensor weights min cosine 0.917, per-channel
  0.979, per-channel with reduce_range 0.981. The weights are not the problem (per-channel int8 weights with
  fp32 activations: 0.9992). The activations are: dynamic int8 uses one scale for the whole batch, and
  MiniLM's [CLS] token carries 25-30 in channels 62/99/223 of the post-attention LayerNorm and the GELU
  outputs where other tokens stay under 4-6, so every other token gets 5 bits. One scale per token fixes
  that (0.9946) and makes an embedding independent of what else is in its batch (batch 1 and batch 32 agree
  to 4e-8); SmoothQuant's channel balancing on top gives 0.9982 with 8-bit weights (alpha 0.5; 0.3: 0.9960,
  0.7: 0.9972), and the shipped form (7-bit weights, below) 0.9963-0.9967 where per-token alone gives
  0.9934-0.9944. SmoothQuant alone on per-tensor activations did not help (0.979-0.983). Smoothing scales
  are floored at their median: unfloored, a calibration that barely exercised a channel (short template
  queries for MiniLM, one photo for the classifier) scaled it up by as much as 100x, and that channel then
  took its token's whole int8 range (MiniLM 0.983, EfficientNet's classifier 0.67).
- Static QDQ calibration of MiniLM (MinMax) was worse, 0.889 (0.721 with symmetric activations); Percentile
  calibration cannot take batches of different lengths, and onnxruntime's own SmoothQuant option needs
  Intel Neural Compressor. MatMulNBits 8-bit (block 32, accuracy level 4) is the most accurate (0.9993) but
  not faster than fp32 here (0.72x time at batch 1, 0.9x at batch 32).
- Weights use 7 bits (+-63): on x86 CPUs without VNNI the u8*s8 product pairs of vpmaddubsw saturate int16
  with full 8-bit weights (OpenVINO's "saturation issue"; onnxruntime's reduce_range). It costs 0.9982 ->
  0.9967 on MiniLM and keeps one cached export right on every CPU (this was measured on a VNNI CPU only).
- Speed, one thread, interleaved with fp32 on a loaded 2-core AMD EPYC (AVX-512 VNNI): a one-query MiniLM
  batch takes 0.41-0.49x the fp32 time (onnxruntime's per-channel dynamic int8: 0.42-0.44x), batch 32
  0.6-0.7x.
- EfficientNet-Lite0's int8 room is small: lite's image embedding is ConSE, the probability-weighted mean of
  the top-10 classes' text embeddings, and on a picture whose class probabilities are nearly tied (the
  gate's synthetic pictures, textures among the photos) a perturbation that barely moves the logits
  swaps the 10th class and moves the embedding several times more (the table's logits and ConSE columns
  side by side). Static QDQ of the convolutions,
  side by side in benchmarks/int8_real.py (calibrated on the runtime's 48 sample pictures; ConSE min
  cosine over 140 held-out photo views): all 49 convolutions 0.66 (logits 0.47), all but the first 15
  0.95, all 32 pointwise ones 0.63, the late pointwise half with the depthwise convolutions between them
  0.976 (per-channel depthwise weights are what hurts), the late pointwise half with 7-bit weights
  (reduce_range) 0.976; the late pointwise half with 8-bit weights 0.994 at 0.77x the fp32 time at
  batch 16. On the gate's own samples that form fell just under 0.99 once the classifier was int8 too, so
  the recipe measures each late layer's cost there and puts back the costliest until the gate's bound
  holds: 0.9937 on the held-out views, each photo's own query still finds it first as often as under fp32
  (7 of 10), at 0.85x the fp32 time. The margin on the gate's samples is thin (the parity verdict that
  `polymodal models --exports` shows); a CPU where it falls under runs the image network in fp32 ONNX.
- The text recipe carried over (int8_pointwise.py in benchmarks: per-pixel dynamic int8 of 1x1
  convolutions as MatMulIntegerToFloat on an NHWC view, 8-bit weights, SmoothQuant, uint8 after ReLU6) is
  the most accurate form for all 32 pointwise layers (ConSE min 0.990) but 1.8x slower than fp32: the
  transposes and elementwise passes per layer break ONNX Runtime's blocked (NCHWc) fp32 chain. On the late
  half only it is accurate (0.994) but barely faster (0.9x). Static QDQ is the form ONNX Runtime runs
  fast. OpenVINO/NNCF are not installed here and were not tried.
- Static ranges make an image's output independent of its batch. A photo unlike the calibration pictures can
  clip at a range; the parity gate and the held-out photos are the check.

For the matrix products calibration only sets the SmoothQuant scales (per-channel maxima of each product's
input); their int8 ranges are measured per token at run time, so an input unlike the calibration data is
never clipped. For the convolutions it sets the static ranges and chooses the layers. With no calibration
batches the smoothing is skipped (per-token int8 alone) and the convolutions stay fp32.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

NETWORKS = ("image", "text")
#: SmoothQuant migration strength: 0.5 splits each channel's range evenly between activation and weight
SMOOTH_ALPHA = 0.5
#: weight levels each side of zero (7 bits; see the module docstring on VNNI-less CPUs)
WEIGHT_LEVELS = 63
#: activation levels each side of zero, per token; stored as uint8 around zero point 128
ACTIVATION_LEVELS = 127
#: a network with fewer 1x1 convolutions than this keeps them fp32 (a CLIP patch embedding is no CNN)
POINTWISE_MIN = 8
#: min cosine to fp32 (of ``compare`` of the outputs) on the calibration batches that the chosen int8
#: convolutions must keep: the parity gate's bound, on the gate's own samples (a higher target, 0.993, was
#: out of reach: single layers alone cost lite's ConSE embedding 0.005-0.01 on its near-tie pictures)
SENSITIVITY_TARGET = 0.99
#: at most this many of the candidate convolutions go back to fp32 before all of them do
MAX_FP32_CONVS = 4


@dataclass
class _Site:
    """The matrix products that read one activation tensor (e.g. the Q, K and V projections of a layer)."""

    activation: str
    nodes: list[Any] = field(default_factory=list)  # onnx NodeProto
    weights: list[np.ndarray] = field(default_factory=list)  # each (in, out), as the product uses it
    biases: list[str | None] = field(default_factory=list)  # a Gemm's C input, added after the product


def quantise(src: Path, dst: Path, network: str, calibration: Sequence[dict[str, np.ndarray]],
             compare: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Write an int8 copy of the fp32 ONNX network ``src`` to ``dst`` (atomically).

    ``network``: "image" or "text" (the recipe is chosen from the graph's layers, see the module docstring).
    ``calibration``: a few input batches by input name, e.g. ``encoder.sample_inputs(network)``; sets the
    SmoothQuant scales and a CNN's activation ranges, and measures which convolutions int8 can take; may be
    empty (then convolutions stay fp32). ``compare``: what the outputs are compared as when choosing those
    convolutions, e.g. the backend's postprocessing (lite's ConSE embedding, which the parity gate checks);
    default the outputs themselves. A network with neither matrix products nor convolutions is copied unchanged.
    """
    import onnx

    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; use one of {', '.join(NETWORKS)}")
    model = onnx.load(str(src))
    sites = _sites(model)
    amax = _input_absmax(model, [s.activation for s in sites], calibration) if sites and calibration else {}
    _rewrite(model, sites, amax)
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}.onnx")
    try:
        onnx.save(model, str(tmp))
        convs = _late_pointwise_convs(model)
        if convs and calibration:
            # after the products: the convolutions are chosen with the int8 classifier already in place
            fp32 = onnx.load(str(src))
            model = _static_int8_convs(tmp, model, fp32, convs, calibration, compare or (lambda x: x))
            onnx.save(model, str(tmp))
        tmp.replace(dst)  # atomic: a concurrent process sees the old state or the whole file
    finally:
        tmp.unlink(missing_ok=True)


def _late_pointwise_convs(model: Any) -> list[str]:
    """The second half (by graph order) of the 1x1, ungrouped convolutions: the ones int8 holds on.

    Earlier pointwise layers work at 112x112-28x28 with few channels, where the quantise/dequantise steps
    cost about what int8 saves and the network is most sensitive to them; depthwise and stem convolutions
    stay fp32 (the module docstring has the measurements)."""
    inits = {i.name: i for i in model.graph.initializer}
    pointwise = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        dims = list(inits[node.input[1]].dims)
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if len(dims) == 4 and dims[2:] == [1, 1] and group == 1 and node.name:
            pointwise.append(node.name)
    return pointwise[len(pointwise) // 2:] if len(pointwise) >= POINTWISE_MIN else []


def _static_int8_convs(src: Path, model: Any, fp32: Any, convs: list[str], calibration: Sequence[dict[str, np.ndarray]],
                       compare: Callable[[np.ndarray], np.ndarray]) -> Any:
    """``model`` (saved at ``src``) with as many of ``convs`` as hold in static QDQ int8 (per-output-channel
    8-bit weights, uint8 activations with MinMax ranges from ``calibration``; ONNX Runtime runs them as
    QLinearConv), returned as a new model.

    Each conv's cost is measured alone on the calibration batches: min cosine of ``compare`` of the outputs to
    those of ``fp32``, the network before any int8. The costliest go back to fp32 one at a time until the
    whole reaches SENSITIVITY_TARGET, at most MAX_FP32_CONVS of them; if it never does, all stay fp32.

    8-bit, not 7-bit, weights: 7 bits cost EfficientNet-Lite0 the gate (ConSE min cosine 0.976 vs 0.993). A
    CPU whose int8 product saturates 8-bit weights (no VNNI) fails the parity check made on it at export,
    and its image network then runs fp32 ONNX with the usual one-line warning."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    batches = [{k: np.ascontiguousarray(v[i:i + 8]) for k, v in batch.items()}
               for batch in calibration for i in range(0, len(next(iter(batch.values()))), 8)]

    class Reader(CalibrationDataReader):
        """The calibration batches, in slices of 8 so that the recorded activations stay small."""

        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="polymodal-quantise-") as tmp:
        out = Path(tmp) / "convs.onnx"
        quantize_static(
            str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
            nodes_to_quantize=convs, per_channel=True, reduce_range=False, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
        )
        qdq = onnx.load(str(out))

    def outputs(m: Any) -> np.ndarray:
        import onnxruntime as ort

        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return compare(np.concatenate([session.run(None, b)[0] for b in batches]))

    def cosine_to_fp32(int8: set[str]) -> float:
        got = outputs(_only_int8(qdq, model, int8)).reshape(len(ref), -1).astype(np.float64)
        cos = (ref * got).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1), 1e-12)
        return float(cos.min())

    ref = outputs(fp32)
    ref = ref.reshape(len(ref), -1).astype(np.float64)
    cost = {c: 1.0 - cosine_to_fp32({c}) for c in convs}
    chosen = set(convs)
    for worst in sorted(convs, key=lambda c: -cost[c])[:MAX_FP32_CONVS + 1]:
        if cosine_to_fp32(chosen) >= SENSITIVITY_TARGET:
            return _only_int8(qdq, model, chosen)
        chosen.discard(worst)
    return model


def _only_int8(qdq: Any, fp32: Any, int8: set[str]) -> Any:
    """The QDQ model ``qdq`` with every quantised conv outside ``int8`` put back as in ``fp32`` (same names)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    original = {n.name: n for n in fp32.graph.node if n.op_type == "Conv"}
    inits = {i.name: i for i in fp32.graph.initializer}
    have = {i.name for i in out.graph.initializer}
    restored: set[str] = set()
    for node in out.graph.node:
        if node.op_type != "Conv" or node.name in int8 or node.name not in original:
            continue
        del node.input[:]
        node.input.extend(original[node.name].input)
        for name in original[node.name].input:
            if name in inits and name not in have:
                out.graph.initializer.append(inits[name])
                have.add(name)
                restored.add(name)
    # a dequantised weight or bias may carry the fp32 tensor's own name: the restored tensor replaces it
    keep_nodes = [n for n in out.graph.node if not restored.intersection(n.output)]
    del out.graph.node[:]
    out.graph.node.extend(keep_nodes)
    # the put-back convs' Quantize/DequantizeLinear nodes now feed nothing
    while True:
        used = {i for n in out.graph.node for i in n.input} | {o.name for o in out.graph.output}
        keep = [n for n in out.graph.node if any(o in used for o in n.output)]
        if len(keep) == len(out.graph.node):
            break
        del out.graph.node[:]
        out.graph.node.extend(keep)
    used = {i for n in out.graph.node for i in n.input}
    kept = [t for t in out.graph.initializer if t.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    return out


def _sites(model: Any) -> list[_Site]:
    """Every MatMul/Gemm whose second operand is a constant 2-D weight, grouped by the tensor it reads."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    by_input: dict[str, _Site] = {}
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        x, w = node.input[0], node.input[1]
        if x in inits or w not in inits or len(inits[w].dims) != 2:
            continue
        bias: str | None = None
        if node.op_type == "Gemm":
            attrs = {a.name: a for a in node.attribute}
            if ("transA" in attrs and attrs["transA"].i) or any(
                n in attrs and attrs[n].f != 1.0 for n in ("alpha", "beta")
            ):
                continue  # rare forms; they stay fp32
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        weight = numpy_helper.to_array(inits[w]).astype(np.float32)
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            weight = weight.T
        site = by_input.setdefault(x, _Site(x))
        site.nodes.append(node)
        site.weights.append(weight)
        site.biases.append(bias)
    return list(by_input.values())


def _input_absmax(model: Any, names: list[str], calibration: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-channel (last axis) maximum of |x| of each named tensor over the calibration batches."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names if n not in outputs
    )
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor by name
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = [i.name for i in session.get_inputs()]
    out: dict[str, np.ndarray] = {}
    for batch in calibration:
        values = session.run(names, {k: np.ascontiguousarray(batch[k]) for k in feeds})
        for name, value in zip(names, values):
            a = np.abs(np.asarray(value, dtype=np.float32)).reshape(-1, value.shape[-1]).max(axis=0)
            out[name] = a if name not in out else np.maximum(out[name], a)
    return out


def _rewrite(model: Any, sites: list[_Site], amax: dict[str, np.ndarray]) -> None:
    """Replace each site's products by the per-token int8 form (module docstring), in place."""
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    consts: dict[str, np.ndarray] = {
        "pq_eps": np.array(1e-6, np.float32),
        "pq_levels": np.array(float(ACTIVATION_LEVELS), np.float32),
        "pq_one": np.array(1.0, np.float32),
        "pq_zero_point": np.array(128, np.uint8),
    }
    if sites:
        graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
        if opset >= 18:
            graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), "pq_axes"))
    before: dict[str, list[Any]] = {}
    replace: dict[str, list[Any]] = {}
    for i, site in enumerate(sites):
        p = f"pq{i}"
        src = site.activation
        weights = site.weights
        nodes: list[Any] = []
        if site.activation in amax:
            w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
            s = np.maximum(amax[site.activation], 1e-5) ** SMOOTH_ALPHA / np.maximum(w_max, 1e-5) ** (1 - SMOOTH_ALPHA)
            # Only shrink channels wider than the median: a channel the calibration barely exercised would
            # otherwise be scaled up on inputs that do use it, and swamp its token's int8 range.
            s = np.maximum(s, np.median(s)).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), f"{p}_smooth"))
            nodes.append(helper.make_node("Mul", [src, f"{p}_smooth"], [f"{p}_x"], name=f"{p}_smooth"))
            src = f"{p}_x"
            weights = [w * s[:, None] for w in weights]
        reduce = (
            helper.make_node("ReduceMax", [f"{p}_abs", "pq_axes"], [f"{p}_max"], keepdims=1, name=f"{p}_max")
            if opset >= 18
            else helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_max"], axes=[-1], keepdims=1, name=f"{p}_max")
        )
        nodes += [
            helper.make_node("Abs", [src], [f"{p}_abs"], name=f"{p}_abs"),
            reduce,
            helper.make_node("Max", [f"{p}_max", "pq_eps"], [f"{p}_m"], name=f"{p}_m"),  # an all-zero row
            helper.make_node("Div", ["pq_levels", f"{p}_m"], [f"{p}_inv"], name=f"{p}_inv"),
            helper.make_node("Mul", [src, f"{p}_inv"], [f"{p}_scaled"], name=f"{p}_scaled"),
            # scale 1, zero point 128: round, shift into uint8 and saturate in one op
            helper.make_node("QuantizeLinear", [f"{p}_scaled", "pq_one", "pq_zero_point"], [f"{p}_q"], name=f"{p}_q"),
        ]
        before[site.nodes[0].name or site.nodes[0].output[0]] = nodes
        for j, (node, w, bias) in enumerate(zip(site.nodes, weights, site.biases)):
            col = np.maximum(np.abs(w).max(axis=0), 1e-12) / WEIGHT_LEVELS
            wq = np.clip(np.round(w / col), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
            name = f"{p}_{j}"
            graph.initializer.extend([
                numpy_helper.from_array(wq, f"{name}_w"),
                # the activation's 1/127 folds into the weight scales; max|x| multiplies the product
                numpy_helper.from_array((col / ACTIVATION_LEVELS).astype(np.float32), f"{name}_wscale"),
            ])
            out = node.output[0]
            product = f"{name}_y" if bias else out
            new = [
                helper.make_node(
                    "MatMulIntegerToFloat", [f"{p}_q", f"{name}_w", "pq_one", f"{name}_wscale", "pq_zero_point"],
                    [f"{name}_f"], name=f"{name}_mm", domain="com.microsoft",
                ),
                helper.make_node("Mul", [f"{name}_f", f"{p}_m"], [product], name=f"{name}_unscale"),
            ]
            if bias:
                new.append(helper.make_node("Add", [product, bias], [out], name=f"{name}_bias"))
            replace[node.name or node.output[0]] = new
    if sites:
        rewritten = []
        for node in graph.node:
            key = node.name or node.output[0]
            rewritten += before.get(key, [])
            rewritten += replace.get(key, [node])
        del graph.node[:]
        graph.node.extend(rewritten)
        used = {i for n in graph.node for i in n.input}
        keep = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
