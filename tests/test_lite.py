"""The offline model on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import polymodal
from polymodal.models.lite.imagenet import imagenet_classes


def test_efficientnet_lite0_weights_classify_imagenet_correctly(lite_torch, photos):
    """The architecture (TF 'same' padding, ReLU6, no SE) must reproduce the ImageNet predictions."""
    batch = [lite_torch.preprocess_image(lite_torch.load_image(photos[n])) for n in ("cat", "coffee")]
    probs = lite_torch.class_probabilities(batch)
    names = [imagenet_classes()[int(i)].name for i in probs.argmax(1)]
    assert names[0] in {"tabby", "tiger cat", "Egyptian cat"}
    assert names[1] == "espresso"
    assert probs[1].max() > 0.5


def test_chelsea_is_a_cat(lite, photos):
    result = polymodal.classify([photos["cat"]], ["cat", "dog", "car", "coffee"], lite)[0]
    assert result.labels[0].label == "cat"
    assert sum(x.score for x in result.labels) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "query,expected",
    [("a cup of coffee", "coffee"), ("a cat", "cat"), ("a space rocket launch", "rocket"),
     ("a motorbike", "motorbike"), ("flowers", "flower")],
)
def test_text_queries_find_the_matching_photo_first(lite, photos, query, expected):
    names = list(photos)
    images = lite.encode_images([photos[n] for n in names])
    scores = images @ lite.encode_texts([query])[0]
    assert names[int(np.argmax(scores))] == expected


def test_embeddings_are_normalised_and_deterministic(lite, photos):
    a = lite.encode_images([photos["cat"], photos["rocket"]])
    b = lite.encode_images([photos["cat"], photos["rocket"]])
    assert a.shape == (2, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)


def test_text_tower_is_minilm_mean_pooling(lite):
    """Our pooling equals the sentence-transformers definition computed by hand from the raw BERT outputs."""
    from transformers import AutoModel, AutoTokenizer

    from polymodal.models.lite.minilm import model_dir

    tok = AutoTokenizer.from_pretrained(str(model_dir()))
    bert = AutoModel.from_pretrained(str(model_dir())).eval()
    texts = ["a cat", "a much longer sentence about a red bus arriving late at the station"]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = bert(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(lite.encode_texts(texts), ref, atol=1e-5)


def test_class_embeddings_are_cached_and_reused(lite, monkeypatch):
    from polymodal.models.lite import encoder as lite_encoder
    from polymodal.models.lite.minilm import MiniLM
    from polymodal.paths import cache_dir

    assert list((cache_dir() / "lite").glob("classes-*.npy")), "first load writes the cache"
    calls = []
    original = MiniLM.encode
    monkeypatch.setattr(MiniLM, "encode", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    again = lite_encoder.LiteEncoder()
    assert calls == []  # nothing re-encoded
    np.testing.assert_array_equal(again.class_embeddings, lite.class_embeddings)
