"""open_clip backend: a tiny open_clip model in open_clip's local-dir format, through every spec form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import polymodal
from polymodal.errors import ModelSpecError, TextTooLongError
from tiny_models import make_tiny_open_clip

TEXTS = ["a photo of a cat", "red car", "two dogs on a beach"]


@pytest.fixture(scope="module")
def oc_dir(tiny_dir):
    path = tiny_dir / "open_clip"
    if not path.exists():
        make_tiny_open_clip(path)
    return path


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (30 + 9 * i, 45, 3), dtype=np.uint8)) for i in range(3)]


@pytest.mark.parametrize("form", ["dir", "open_clip:local-dir:", "open_clip:"])
def test_embeddings_equal_direct_open_clip_calls(oc_dir, form):
    import open_clip

    spec = str(oc_dir) if form == "dir" else f"{form}{oc_dir}"
    enc = polymodal.load_model(spec, batch_size=2, runtime="torch")
    ref, _, pre = open_clip.create_model_and_transforms(f"local-dir:{oc_dir}")
    tok = open_clip.get_tokenizer(f"local-dir:{oc_dir}")
    ref.eval()
    with torch.no_grad():
        img = ref.encode_image(torch.stack([pre(i) for i in _images()]), normalize=True).numpy()
        txt = ref.encode_text(tok(TEXTS), normalize=True).numpy()
    np.testing.assert_allclose(enc.encode_images(_images()), img, atol=1e-5)
    np.testing.assert_allclose(enc.encode_texts(TEXTS), txt, atol=1e-5)
    assert enc.dim == 16 and enc.backend == "open_clip"
    assert enc.logit_scale == pytest.approx(float(ref.logit_scale.detach().exp()))


@pytest.mark.slow
def test_long_text_refused_then_truncated(oc_dir):
    enc = polymodal.load_model(str(oc_dir))
    text = "cat " * 100
    with pytest.raises(TextTooLongError):
        enc.encode_texts([text])
    assert enc.encode_texts([text], truncate=True).shape == (1, 16)


def test_arch_without_tag_is_a_spec_error():
    with pytest.raises(ModelSpecError, match="pretrained tag"):
        polymodal.load_model("open_clip:ViT-B-32")
