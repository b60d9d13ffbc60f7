"""The int8 recipe (models/quantise.py): parity on the real lite towers with held-out data, and a tiny CLIP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import polymodal
from polymodal.models.base import real_sentences
from polymodal.models.quantise import quantise
from polymodal.paths import cache_dir
from tiny_models import make_tiny_clip


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _fp32_export(encoder, network: str, folder: Path) -> Path:
    from polymodal.models.runtime import export_network

    return export_network(encoder, network, "fp32", folder)[0]


@pytest.fixture(scope="module")
def lite_exports(lite_torch) -> Path:
    """fp32 exports of lite's towers, kept in the test cache by weights (the export takes ~30 s once)."""
    return cache_dir() / "quantise-test" / f"lite-{lite_torch.weights_identity()[:16]}"


def _held_out_sentences(n: int) -> list[str]:
    """ImageNet class definitions (timm ships them): real sentences the recipe never calibrates on."""
    import timm

    path = Path(timm.__file__).parent / "data" / "_info" / "imagenet_synset_to_definition.txt"
    calibrated = set(real_sentences())  # what sample_inputs("text") calibrates on
    lines = [ln.split("\t", 1)[1] for ln in path.read_text().splitlines() if "\t" in ln]
    lines = [ln for ln in lines if ln not in calibrated]
    return [lines[i] for i in np.random.default_rng(7).choice(len(lines), n, replace=False)]


@pytest.mark.slow
def test_minilm_int8_holds_on_real_sentences_it_was_not_calibrated_on(lite_torch, lite_exports, tmp_path):
    src, dst = _fp32_export(lite_torch, "text", lite_exports), tmp_path / "text-int8.onnx"
    quantise(src, dst, "text", [lite_torch.sample_inputs("text")])
    texts = _held_out_sentences(96)
    ref, got = _session(src), _session(dst)
    for start in (0, 32, 64):
        feed = lite_torch.text_inputs(texts[start:start + 32], truncate=True)
        cos = _cos(ref.run(None, feed)[0], got.run(None, feed)[0])
        assert cos.min() >= 0.99, (start, cos.min())
    # one scale per token: a text's embedding does not depend on the rest of its batch
    alone = got.run(None, lite_torch.text_inputs(texts[:1], truncate=True))[0]
    batched = got.run(None, lite_torch.text_inputs(texts[:8], truncate=True))[0]
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)


def _photo_pixels(encoder, photos) -> np.ndarray:
    from polymodal.media.images import load_image

    return np.stack([np.asarray(encoder.preprocess_image(load_image(p)), dtype=np.float32) for p in photos.values()])


def _int8_convs(path: Path) -> int:
    """Convolutions that read a dequantised (int8) input in an int8 export."""
    import onnx

    graph = onnx.load(str(path)).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    return sum(n.op_type == "Conv" and producer.get(n.input[0]) == "DequantizeLinear" for n in graph.node)


@pytest.mark.slow
def test_lite0_int8_holds_on_real_photos_logits_and_conse(lite_torch, lite_exports, photos, tmp_path):
    """Calibrated on the runtime's samples (synthetic pictures, matplotlib's photos), checked on others; most
    of the late 1x1 convolutions really are int8 (12-16 of EfficientNet-Lite0's 32 after the sensitivity
    check), the stem and depthwise ones not."""
    from polymodal.models.base import normalise

    src, dst = _fp32_export(lite_torch, "image", lite_exports), tmp_path / "image-int8.onnx"
    quantise(src, dst, "image", [lite_torch.sample_inputs("image")], lite_torch.postprocess_image)
    assert 12 <= _int8_convs(dst) <= 16
    pixels = _photo_pixels(lite_torch, photos)
    ref = _session(src).run(None, {"pixel_values": pixels})[0]
    got = _session(dst).run(None, {"pixel_values": pixels})[0]
    assert _cos(ref, got).min() >= 0.99
    conse = _cos(normalise(lite_torch.postprocess_image(ref)), normalise(lite_torch.postprocess_image(got)))
    assert conse.min() >= 0.99
    # static ranges: a photo's output does not depend on the rest of its batch
    alone = _session(dst).run(None, {"pixel_values": pixels[:1]})[0]
    np.testing.assert_allclose(alone[0], got[0], atol=1e-5)


@pytest.mark.slow
def test_lite0_photo_check_fails_when_every_convolution_is_int8(lite_torch, lite_exports, photos, tmp_path,
                                                                 monkeypatch):
    """Positive control for the test above: the same photos and bound reject int8 on all 49 convolutions."""
    import onnx

    from polymodal.models import quantise as module

    src, dst = _fp32_export(lite_torch, "image", lite_exports), tmp_path / "image-int8-all.onnx"
    every = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "Conv"]
    monkeypatch.setattr(module, "_late_pointwise_convs", lambda model: every)
    monkeypatch.setattr(module, "SENSITIVITY_TARGET", -1.0)  # keep every one, however much it costs
    quantise(src, dst, "image", [lite_torch.sample_inputs("image")], lite_torch.postprocess_image)
    assert _int8_convs(dst) == len(every) == 49
    pixels = _photo_pixels(lite_torch, photos)
    ref = _session(src).run(None, {"pixel_values": pixels})[0]
    got = _session(dst).run(None, {"pixel_values": pixels})[0]
    assert _cos(ref, got).min() < 0.99


def test_only_a_cnns_late_pointwise_convolutions_are_chosen(tmp_path):
    """A CLIP tower's patch embedding (a strided kxk convolution) is never chosen; a stack of 1x1 layers
    gives its second half."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from polymodal.models.quantise import _late_pointwise_convs

    def model(kernel: int, n: int) -> onnx.ModelProto:
        nodes, inits, x = [], [], "x"
        for i in range(n):
            inits.append(numpy_helper.from_array(np.ones((4, 4, kernel, kernel), np.float32), f"w{i}"))
            nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"y{i}"], name=f"conv{i}"))
            x = f"y{i}"
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                                  [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
        return helper.make_model(graph)

    assert _late_pointwise_convs(model(1, 10)) == [f"conv{i}" for i in range(5, 10)]
    assert _late_pointwise_convs(model(3, 10)) == []
    assert _late_pointwise_convs(model(1, 4)) == []  # too few to be a CNN's pointwise layers


@pytest.mark.slow
def test_tiny_clip_int8_runs_and_loads(tmp_path):
    import onnx

    encoder = polymodal.load_model(str(make_tiny_clip(tmp_path / "clip")), runtime="torch")
    for network in ("image", "text"):
        src = _fp32_export(encoder, network, tmp_path / "exports")
        dst = tmp_path / f"{network}-int8.onnx"
        sample = encoder.sample_inputs(network)
        quantise(src, dst, network, [sample])
        assert any(n.op_type == "MatMulIntegerToFloat" for n in onnx.load(str(dst)).graph.node), network
        ref = _session(src).run(None, sample)[0]
        got = _session(dst).run(None, sample)[0]
        assert got.shape == ref.shape and np.isfinite(got).all()
        assert _cos(ref.reshape(len(ref), -1), got.reshape(len(got), -1)).min() > 0.95, network
    with pytest.raises(ValueError, match="unknown network"):
        quantise(src, tmp_path / "x.onnx", "audio", [])
