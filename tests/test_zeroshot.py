"""match and classify: prompt ensembling, probabilities, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import polymodal
from polymodal.errors import InputError
from polymodal.zeroshot import get_templates, label_embeddings
from tiny_models import make_tiny_clip, make_tiny_siglip


@pytest.fixture(scope="module")
def tiny_clip(tiny_dir):
    path = tiny_dir / "zs-clip"
    if not path.exists():
        make_tiny_clip(path)
    return polymodal.load_model(str(path))


def test_bundled_template_sets():
    openai = get_templates("openai")
    simple = get_templates("simple")
    assert len(openai) == 80 and len(simple) == 7
    assert set(simple) <= set(openai)
    assert "a photo of a {}." in openai and "itap of a {}." in simple


def test_templates_from_a_file_and_bad_templates(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("a {} photo\n\nart of {}\n")
    assert get_templates(str(f)) == ["a {} photo", "art of {}"]
    with pytest.raises(InputError, match=r"no '\{\}'"):
        get_templates(["a photo"])
    with pytest.raises(InputError, match="neither"):
        get_templates("no-such-set")


def test_prompt_ensemble_is_mean_of_normalised_then_renormalised(tiny_clip):
    temps = ["a photo of a {}.", "art of the {}.", "a {} in a video game."]
    got = label_embeddings(tiny_clip, ["cat", "dog"], temps)
    for row, label in zip(got, ["cat", "dog"]):
        e = tiny_clip.encode_texts([t.format(label) for t in temps])
        m = e.mean(0)
        np.testing.assert_allclose(row, m / np.linalg.norm(m), atol=1e-6)


def test_match_probabilities_use_the_logit_scale(tiny_clip):
    imgs = [Image.new("RGB", (40, 40), c) for c in [(255, 0, 0), (0, 0, 255)]]
    res = polymodal.match(imgs, ["red", "blue", "green"], tiny_clip)
    assert res.similarity.shape == (2, 3) and res.probs.shape == (2, 3)
    np.testing.assert_allclose(res.probs.sum(1), 1.0, atol=1e-5)
    logits = tiny_clip.logit_scale * res.similarity
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(res.probs, expected / expected.sum(1, keepdims=True), atol=1e-5)


@pytest.mark.slow
def test_siglip_probabilities_are_sigmoids(tiny_dir):
    path = tiny_dir / "zs-siglip"
    if not path.exists():
        make_tiny_siglip(path)
    enc = polymodal.load_model(str(path))
    res = polymodal.match([Image.new("RGB", (40, 40), (1, 2, 3))], ["cat", "dog"], enc)
    z = enc.logit_scale * res.similarity + enc.logit_bias
    np.testing.assert_allclose(res.probs, 1 / (1 + np.exp(-z)), atol=1e-6)


def test_classify_sorts_and_tops(lite, photos):
    out = polymodal.classify([photos["coffee"], photos["rocket"]], ["cat", "coffee", "rocket"], lite, top=2)
    assert [r.labels[0].label for r in out] == ["coffee", "rocket"]
    assert all(len(r.labels) == 2 for r in out)
    assert all(r.labels[0].score >= r.labels[1].score for r in out)
    assert out[0].source == str(photos["coffee"])


@pytest.mark.parametrize("labels,msg", [([], "empty"), (["  ", ""], "empty"), (["cat", "cat"], "repeated")])
def test_bad_label_lists(tiny_clip, labels, msg):
    with pytest.raises(InputError, match=msg):
        polymodal.classify([Image.new("RGB", (8, 8))], labels, tiny_clip)


def test_label_embeddings_of_an_exported_model_are_cached_on_disk(lite, photos, monkeypatch, tmp_path):
    """The second classify with the same labels embeds no prompt: 80 prompts per label cost seconds on a CPU."""
    from polymodal.zeroshot import label_embeddings

    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))  # an empty cache: this run's own entries
    first = label_embeddings(lite, ["cat", "dog", "teapot"], "openai")
    calls: list[int] = []
    real = type(lite).encode_texts
    monkeypatch.setattr(type(lite), "encode_texts", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    again = label_embeddings(lite, ["cat", "dog", "teapot"], "openai")
    np.testing.assert_array_equal(first, again)
    assert calls == []
    label_embeddings(lite, ["cat", "dog", "kettle"], "openai")  # control: other labels are embedded
    assert calls == [1]
