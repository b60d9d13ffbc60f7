"""ONNX runtime (fp32/int8) parity, the export cache, fallbacks, and the fast decode path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import polymodal
from polymodal.errors import ImageDecodeError, InputError
from polymodal.media.images import load_image
from polymodal.models import runtime
from tiny_models import make_tiny_clip


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def clip_dir(tiny_dir):
    path = tiny_dir / "rt-clip"
    if not path.exists():
        make_tiny_clip(path)
    return path


@pytest.fixture(scope="module")
def big_photos(tmp_path_factory, photos):
    """Real photos scaled up to 2400x1800 JPEGs (quality 90), like a camera's output."""
    out = []
    folder = tmp_path_factory.mktemp("big")
    for name in ("cat", "coffee", "rocket", "motorbike", "flower", "china"):
        img = load_image(photos[name]).resize((2400, 1800), Image.Resampling.BICUBIC)
        path = folder / f"{name}.jpg"
        img.save(path, quality=90)
        out.append(path)
    return out


@pytest.mark.slow
def test_onnx_fp32_equals_torch_on_both_towers(clip_dir, photos):
    onnx = polymodal.load_model(str(clip_dir), runtime="onnx")
    torch_ = polymodal.load_model(str(clip_dir), runtime="torch")
    assert onnx.runtimes == {"image": "onnx-fp32", "text": "onnx-fp32"}
    imgs = [photos["cat"], photos["rocket"], photos["china"]]
    texts = ["a cat", "a rocket on its launch pad", "a temple"]
    np.testing.assert_allclose(onnx.encode_images(imgs), torch_.encode_images(imgs), atol=1e-4)
    np.testing.assert_allclose(onnx.encode_texts(texts), torch_.encode_texts(texts), atol=1e-4)
    assert torch_.runtimes == {"image": "torch", "text": "torch"}


def test_int8_holds_on_both_real_lite_towers(lite, photos, polymodal_log):
    """Both real towers pass the int8 gate (no fallback line); queries keep their photos first as in fp32."""
    q = polymodal.load_model("lite", precision="int8")
    assert q.runtimes == {"image": "onnx-int8", "text": "onnx-int8"}
    assert not any("failed its parity check" in m for m in polymodal_log)
    names = list(photos)
    imgs = [photos[n] for n in names]
    fp32_img, int8_img = lite.encode_images(imgs), q.encode_images(imgs)
    assert _cos(int8_img, fp32_img).min() >= 0.99
    queries = ["a cup of coffee", "a cat", "a space rocket launch", "a motorbike", "flowers", "a horse"]
    fp32_txt, int8_txt = lite.encode_texts(queries), q.encode_texts(queries)
    assert _cos(int8_txt, fp32_txt).min() >= 0.99
    first = lambda img, txt: [names[int(i)] for i in (img @ txt.T).argmax(0)]  # noqa: E731
    assert first(int8_img, int8_txt) == first(fp32_img, fp32_txt)
    reports = runtime.cache_dir_reports()
    assert any(r["network"] == "text" and r["precision"] == "int8" and r["passed"] for r in reports)


@pytest.mark.slow
def test_an_int8_network_that_fails_its_gate_falls_back_and_says_so_at_every_load(tmp_path, monkeypatch,
                                                                                   polymodal_log):
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "INT8_MIN_COSINE", 1.5)  # no int8 export can pass
    src = make_tiny_clip(tmp_path / "m", seed=8)
    q = polymodal.load_model(str(src), precision="int8")
    assert q.runtimes == {"image": "onnx-fp32", "text": "onnx-fp32"}
    said = [m for m in polymodal_log if "int8 ONNX export" in m and "failed its parity check" in m]
    assert len(said) == 2
    polymodal_log.clear()
    polymodal.load_model(str(src), precision="int8")  # from the cache: said again
    assert len([m for m in polymodal_log if "runs on fp32 ONNX instead" in m]) == 2


@pytest.mark.slow
def test_export_cache_is_reused_and_invalidated_when_weights_change(tmp_path, monkeypatch):
    model_dir = make_tiny_clip(tmp_path / "m", seed=3)
    calls: list[str] = []
    real = runtime._export_fp32
    def counting(module, example, dynamic, path):
        calls.append(path.name)
        real(module, example, dynamic, path)

    monkeypatch.setattr(runtime, "_export_fp32", counting)
    polymodal.load_model(str(model_dir))
    assert sorted(calls) == ["image-fp32.onnx", "text-fp32.onnx"]
    calls.clear()
    again = polymodal.load_model(str(model_dir))
    assert calls == [] and again.runtimes == {"image": "onnx-fp32", "text": "onnx-fp32"}
    make_tiny_clip(model_dir, seed=4)  # same place, new weights
    polymodal.load_model(str(model_dir))
    assert sorted(calls) == ["image-fp32.onnx", "text-fp32.onnx"]


@pytest.mark.slow
def test_failed_parity_check_keeps_torch_and_says_so(clip_dir, tmp_path, monkeypatch, polymodal_log):
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "fresh-cache"))
    monkeypatch.setattr(runtime, "FP32_MIN_COSINE", 1.5)  # no export can pass
    enc = polymodal.load_model(str(clip_dir))
    assert enc.runtimes == {}  # nothing swapped; torch runs on first use
    enc.encode_texts(["a cat"])
    assert enc.runtimes == {"text": "torch"}
    failures = [m for m in polymodal_log if "failed its parity check" in m and "runs on torch" in m]
    assert len(failures) == 2


@pytest.mark.parametrize("kwargs,msg", [
    (dict(runtime="tensorrt"), "unknown runtime"), (dict(precision="fp8"), "unknown precision"),
    (dict(runtime="torch", precision="int8"), "int8 runs on the onnx runtime"),
])
def test_bad_runtime_options(kwargs, msg):
    with pytest.raises(InputError, match=msg):
        polymodal.load_model("lite", **kwargs)


def test_draft_decode_reduces_size_but_keeps_the_short_side(big_photos):
    full = load_image(big_photos[0])
    small = load_image(big_photos[0], min_side=448)
    assert full.size == (2400, 1800)
    assert min(small.size) >= 448 and small.size[0] < 1200  # DCT scaling by 1/2 at least


def test_fast_decode_matches_the_reference_pipeline_on_real_photos(big_photos):
    """Reduced-size decode + our transform vs full decode + reference transform: cosine >= 0.995."""
    fast = polymodal.load_model("lite", runtime="torch")
    ref = polymodal.load_model("lite", runtime="torch", fast_preprocess=False)
    cos = _cos(fast.encode_images(big_photos), ref.encode_images(big_photos))
    assert cos.min() >= 0.995, cos


def test_clip_pil_transform_matches_the_model_processor(clip_dir, big_photos):
    fast = polymodal.load_model(str(clip_dir), runtime="torch")
    ref = polymodal.load_model(str(clip_dir), runtime="torch", fast_preprocess=False)
    assert fast.transform is not None and ref.transform is None
    cos = _cos(fast.encode_images(big_photos), ref.encode_images(big_photos))
    assert cos.min() >= 0.995, cos


def test_parallel_decode_gives_the_same_result_and_names_a_bad_file(lite, photos, tmp_path):
    items = [photos[n] for n in ("cat", "coffee", "rocket", "flower", "china")] * 3
    lite.decode_workers = 0
    serial = lite.encode_images(items, batch_size=4)
    lite.decode_workers = 3
    threaded = lite.encode_images(items, batch_size=4)
    np.testing.assert_array_equal(serial, threaded)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    with pytest.raises(ImageDecodeError, match=r"bad\.jpg"):
        lite.encode_images([*items[:6], bad, *items[6:]], batch_size=4)


def test_the_int8_gate_refuses_kept_cosines_with_scrambled_neighbours():
    """Cosine alone would pass this export; the top-10 agreement rule catches that it reorders neighbours."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=64) + 0.02 * rng.normal(size=(32, 64))  # tight: neighbours rest on small differences
    scrambled = ref + 0.02 * rng.normal(size=(32, 64))  # a new small difference per sample: cosine still ~1
    rep = runtime._parity("text", "int8", ref, scrambled)
    assert rep.min_cosine >= runtime.INT8_MIN_COSINE
    assert rep.top10_agreement < runtime.INT8_MIN_AGREEMENT and not rep.passed
    kept = runtime._parity("text", "int8", ref, ref * 1.001)  # control: same neighbours, same cosines
    assert kept.top10_agreement == 1.0 and kept.passed


def test_the_gate_checks_batch_one_as_well():
    ref = np.eye(16)[:12] + 0.1
    rep = runtime._parity("image", "fp32", ref, ref.copy(), got_single=-ref[:4])
    assert rep.min_cosine > 0.999 and rep.batch1_min_cosine < 0 and not rep.passed
