"""int8 for exported networks: per-token dynamic int8 with SmoothQuant scaling on the matrix products.

``quantise(src, dst, network, calibration)`` rewrites every matrix product with a constant 2-D weight
(MatMul, and Gemm without transposed/scaled inputs) as

    x  ->  x / s                       SmoothQuant scaling (Xiao et al., ICML 2023), s from calibration
       ->  q = round(127 x / max|x|)   int8 per token: one scale per row of x, computed at run time
       ->  MatMulIntegerToFloat(q, W_q) * max|x|   W_q = round((s W) / w_c) per output column c, 7 bits

and leaves everything else (attention's activation-by-activation products, convolutions, norms) in fp32.
Which layers are matrix products decides the recipe, not the network's name: a CLIP ViT image tower is a
transformer and is quantised like a text tower, while a CNN such as lite's EfficientNet-Lite0 keeps its
convolutions fp32 and only its classifier becomes int8.

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
- EfficientNet-Lite0 (these weights) amplifies small perturbations: uniform noise of half a pixel level on
  its input moves fp32 logits to min cosine 0.86. Static QDQ int8 of the convolutions (per-channel,
  MinMax/Percentile/Entropy, u8 or s8 activations, calibrated on crops of grace_hopper.jpg) gave logits min
  cosine 0.25-0.54; keeping the first 9/15/24 of its 49 convolutions fp32 gave 0.972/0.984/0.985 (ConSE
  embedding 0.93/0.90/0.93) at ~1.5x fp32 throughput. Even the single most robust late layers cost about
  1e-3 each, so no split passes the 0.99 gate, and per-layer exclusion chosen on synthetic sample images
  would pass there and fail on photos. Convolutions therefore stay fp32.

Calibration only sets the SmoothQuant scales (per-channel maxima of each product's input); the int8 ranges
are measured per token at run time, so an input unlike the calibration data is never clipped. With no
calibration batches the smoothing is skipped (per-token int8 alone).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


@dataclass
class _Site:
    """The matrix products that read one activation tensor (e.g. the Q, K and V projections of a layer)."""

    activation: str
    nodes: list[Any] = field(default_factory=list)  # onnx NodeProto
    weights: list[np.ndarray] = field(default_factory=list)  # each (in, out), as the product uses it
    biases: list[str | None] = field(default_factory=list)  # a Gemm's C input, added after the product


def quantise(src: Path, dst: Path, network: str, calibration: Sequence[dict[str, np.ndarray]]) -> None:
    """Write an int8 copy of the fp32 ONNX network ``src`` to ``dst`` (atomically).

    ``network``: "image" or "text" (the recipe is chosen from the graph's layers, see the module docstring).
    ``calibration``: a few input batches by input name, e.g. ``encoder.sample_inputs(network)``; used only for
    the SmoothQuant scales, may be empty. A network with no matrix products is copied unchanged.
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
        tmp.replace(dst)  # atomic: a concurrent process sees the old state or the whole file
    finally:
        tmp.unlink(missing_ok=True)


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
