"""polymodal.clip against OpenAI's own clip package on identical weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from polymodal import clip
from polymodal.errors import ModelSpecError, TextTooLongError
from tiny_models import make_tiny_clip

TEXTS = ["a photo of a cat", "A Dog!!  running   on the beach", "café crème", "", "3 red cars, 2 buses"]
TINY = dict(embed_dim=16, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
            context_length=77, vocab_size=49408, transformer_width=32, transformer_heads=4, transformer_layers=2)


@pytest.fixture(scope="module")
def openai_tiny(tmp_path_factory):
    """A random model built with OpenAI's model code, saved in open_clip's directory format (same state dict)."""
    import openai_reference

    torch.manual_seed(0)
    ref = openai_reference.model.CLIP(**TINY).eval()
    path = tmp_path_factory.mktemp("openai-tiny")
    cfg = {"model_cfg": {"embed_dim": 16, "quick_gelu": True,
                         "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
                         "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4,
                                      "layers": 2}}}
    (path / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path / "open_clip_model.safetensors"))
    return ref, path


def test_tokenize_equals_openai():
    import openai_reference

    ref = openai_reference.simple_tokenizer.SimpleTokenizer()
    ours = clip.tokenize(TEXTS)
    assert ours.dtype == torch.int32 and ours.shape == (len(TEXTS), 77)
    for row, text in zip(ours, TEXTS):
        expected = [ref.encoder["<|startoftext|>"], *ref.encode(text), ref.encoder["<|endoftext|>"]]
        assert row[: len(expected)].tolist() == expected
        assert not row[len(expected):].any()


def test_tokenize_context_and_truncation():
    long = "word " * 100
    with pytest.raises(RuntimeError):  # what code written for OpenAI's clip catches
        clip.tokenize(long)
    with pytest.raises(TextTooLongError):
        clip.tokenize([long])
    t = clip.tokenize(long, truncate=True)
    assert t[0, -1].item() == 49407 and t[0, 0].item() == 49406
    assert clip.tokenize("a cat", context_length=10).shape == (1, 10)


def test_outputs_equal_openai_model_on_same_weights(openai_tiny):
    ref, path = openai_tiny
    model, preprocess = clip.load(str(path))
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)) for _ in range(2)]
    image = torch.stack([preprocess(i) for i in images])
    text = clip.tokenize(TEXTS)
    with torch.no_grad():
        for ours, theirs in [
            (model.encode_image(image), ref.encode_image(image)),
            (model.encode_text(text), ref.encode_text(text)),
            (model(image, text)[0], ref(image, text)[0]),
            (model(image, text)[1], ref(image, text)[1]),
        ]:
            assert ours.shape == theirs.shape
            assert (ours - theirs).abs().max().item() <= 1e-5
    assert model.logit_scale.exp().item() == pytest.approx(ref.logit_scale.exp().item())


def test_openai_preprocess_matches_openai_transform(openai_tiny):
    """OpenAI's _transform: Resize(n, bicubic) -> CenterCrop(n) -> RGB -> ToTensor -> Normalize."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    _, path = openai_tiny
    _, preprocess = clip.load(str(path))
    ref = Compose([Resize(32, interpolation=InterpolationMode.BICUBIC), CenterCrop(32), ToTensor(),
                   Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    img = Image.fromarray(np.random.default_rng(2).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    assert (preprocess(img) - ref(img)).abs().max().item() < 1e-5


def test_seed_snippet_runs_against_a_tiny_transformers_model(tiny_dir, tmp_path):
    path = tiny_dir / "clip-seed"
    if not path.exists():
        make_tiny_clip(path)
    Image.new("RGB", (64, 48), (250, 120, 10)).save(tmp_path / "image.jpg")

    # --- the snippet, with only its import changed ---
    model, preprocess = clip.load(str(path))
    image = preprocess(Image.open(tmp_path / "image.jpg")).unsqueeze(0)
    text = clip.tokenize(["a photo of a cat"])
    image_features = model.encode_image(image)
    text_features = model.encode_text(text)
    similarity = image_features @ text_features.T
    # ---

    from transformers import CLIPModel

    ref = CLIPModel.from_pretrained(path).eval()
    with torch.no_grad():
        ref_img = ref.get_image_features(pixel_values=image).pooler_output
        ref_txt = ref.get_text_features(input_ids=text.long()).pooler_output
    assert similarity.shape == (1, 1)
    assert (image_features - ref_img).abs().max().item() <= 1e-5
    assert (text_features - ref_txt).abs().max().item() <= 1e-5
    logits_per_image, logits_per_text = model(image, text)
    assert logits_per_image.shape == (1, 1) and logits_per_text.shape == (1, 1)


def test_available_models_and_refusals(tmp_path):
    assert "ViT-B/32" in clip.available_models() and "RN50" in clip.available_models()
    pt = tmp_path / "ViT-B-32.pt"
    pt.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ModelSpecError, match="pickle"):
        clip.load(str(pt))
    with pytest.raises(ModelSpecError, match="ViT-B/32"):
        clip.load("ViT-Z/99")
