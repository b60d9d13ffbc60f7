"""transformers backend: tiny random CLIP / SigLIP / Chinese-CLIP loaded through the real spec paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import polymodal
from polymodal.errors import TextTooLongError
from tiny_models import make_tiny_chinese_clip, make_tiny_clip, make_tiny_siglip

BUILDERS = {"clip": make_tiny_clip, "siglip": make_tiny_siglip, "chinese_clip": make_tiny_chinese_clip}
TEXTS = ["a photo of a cat", "red car", "a small blue cup of coffee"]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 52, 3), dtype=np.uint8)) for i in range(3)]


# Each kind's first load exports it to ONNX (seconds); the fast lane keeps CLIP, the full suite runs all three.
@pytest.fixture(scope="module", params=[k if k == "clip" else pytest.param(k, marks=pytest.mark.slow)
                                        for k in sorted(BUILDERS)])
def tiny(request, tiny_dir):
    kind = request.param
    path = tiny_dir / f"hf-{kind}"
    if not path.exists():
        BUILDERS[kind](path)
    return kind, path


def _reference(kind: str, path) -> tuple[np.ndarray, np.ndarray, object]:
    """Direct transformers calls on the same weights, the way each model's documentation shows."""
    import transformers

    cls = {"clip": "CLIPModel", "siglip": "SiglipModel", "chinese_clip": "ChineseCLIPModel"}[kind]
    model = getattr(transformers, cls).from_pretrained(path).eval()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    proc = transformers.AutoImageProcessor.from_pretrained(path)
    padding = "max_length" if kind == "siglip" else True
    t = tok(TEXTS, padding=padding, max_length=16 if kind == "siglip" else None, return_tensors="pt")
    if kind == "siglip":
        t = {"input_ids": t["input_ids"]}
    elif kind == "clip":
        t = {"input_ids": t["input_ids"], "attention_mask": t["attention_mask"]}
    with torch.no_grad():
        img = model.get_image_features(pixel_values=proc(images=_images(), return_tensors="pt")["pixel_values"])
        txt = model.get_text_features(**t)
    img = img if isinstance(img, torch.Tensor) else img.pooler_output
    txt = txt if isinstance(txt, torch.Tensor) else txt.pooler_output
    img = torch.nn.functional.normalize(img, dim=-1).numpy()
    txt = torch.nn.functional.normalize(txt, dim=-1).numpy()
    return img, txt, model


@pytest.mark.parametrize("form", ["dir", "hf"])
def test_embeddings_equal_direct_transformers_calls(tiny, form):
    kind, path = tiny
    spec = str(path) if form == "dir" else f"hf:{path}"
    # The reference pipeline (the model's own processor, torch): exact equality is defined there. The fast
    # defaults (ONNX, PIL transform) are held to their own bounds in test_runtime.py.
    enc = polymodal.load_model(spec, batch_size=2, runtime="torch", fast_preprocess=False)
    ref_img, ref_txt, ref_model = _reference(kind, path)
    img = enc.encode_images(_images())
    txt = enc.encode_texts(TEXTS)
    assert img.dtype == np.float32 and txt.dtype == np.float32
    assert img.shape == (3, enc.dim) and txt.shape == (3, enc.dim)
    np.testing.assert_allclose(img, ref_img, atol=1e-5)
    np.testing.assert_allclose(txt, ref_txt, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    assert enc.logit_scale == pytest.approx(float(ref_model.logit_scale.detach().exp()))
    if kind == "siglip":
        assert enc.logit_bias == pytest.approx(float(ref_model.logit_bias.detach()))
    else:
        assert enc.logit_bias is None
    assert enc.info.backend == "hf" and enc.info.dim == enc.dim


@pytest.mark.slow
def test_images_as_paths_bytes_and_pil_agree(tiny, tmp_path):
    _, path = tiny
    enc = polymodal.load_model(str(path))
    img = _images()[0]
    file = tmp_path / "x.png"
    img.save(file)
    a = enc.encode_images([file, str(file), file.read_bytes(), img])
    np.testing.assert_allclose(a, np.repeat(a[:1], 4, axis=0), atol=1e-6)


@pytest.mark.slow
def test_long_text_is_refused_unless_truncation_is_asked(tiny):
    _, path = tiny
    enc = polymodal.load_model(str(path))
    long_text = " ".join(["cat"] * 200)
    with pytest.raises(TextTooLongError, match=str(enc.context_length)):
        enc.encode_texts([long_text])
    out = enc.encode_texts([long_text], truncate=True)
    assert out.shape == (1, enc.dim) and np.isfinite(out).all()


def test_empty_inputs_give_empty_arrays(tiny):
    _, path = tiny
    enc = polymodal.load_model(str(path))
    assert enc.encode_images([]).shape == (0, enc.dim)
    assert enc.encode_texts([]).shape == (0, enc.dim)


def test_progress_is_reported_per_batch(tiny):
    _, path = tiny
    enc = polymodal.load_model(str(path), batch_size=2)
    seen: list[tuple[int, int]] = []
    enc.encode_images(_images(), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 3), (3, 3)]
