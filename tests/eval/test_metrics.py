"""Metric parity with the reference implementations on identical inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score
from torchmetrics.retrieval import RetrievalHitRate, RetrievalRecall

from polymodal.errors import InputError
from polymodal.eval import metrics


def _random_set(seed: int, images: int = 30, per_image: tuple[int, int] = (1, 5)):
    rng = np.random.default_rng(seed)
    owner = np.concatenate([[i] * rng.integers(*per_image) for i in range(images)])
    sim = rng.standard_normal((len(owner), images)).astype(np.float32)
    sim[np.arange(len(owner)), owner] += rng.uniform(0, 2.5, len(owner))  # some signal
    return sim, owner


def _torchmetrics(metric, sim: np.ndarray, relevant: np.ndarray) -> float:
    q, g = sim.shape
    indexes = torch.arange(q).repeat_interleave(g)
    return float(metric(torch.tensor(sim.ravel()), torch.tensor(relevant.ravel()), indexes=indexes))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 10])
def test_recall_equals_torchmetrics(seed, k):
    sim, owner = _random_set(seed)
    relevant_t2i = owner[:, None] == np.arange(sim.shape[1])[None, :]
    # text -> image: each caption has exactly one relevant image, so recall is the hit rate
    ours = metrics.text_to_image_recall(sim, owner, k)
    assert ours == pytest.approx(_torchmetrics(RetrievalRecall(top_k=k), sim, relevant_t2i))
    # image -> text: "at least one of its captions in the top k" is torchmetrics' hit rate
    i2t = sim.T.copy()
    ours = metrics.image_to_text_recall(i2t, owner, k)
    assert ours == pytest.approx(_torchmetrics(RetrievalHitRate(top_k=k), i2t, relevant_t2i.T))


def test_hand_made_retrieval_with_several_captions_and_ties():
    owner = np.array([0, 0, 1, 2])  # image 0 has two captions
    sim_t2i = np.array([[0.9, 0.1, 0.0],   # caption 0 -> image 0 first: hit at 1
                        [0.2, 0.2, 0.1],   # tie between images 0 and 1: image 1 ranks first by the rule
                        [0.1, 0.3, 0.5],   # caption 2's image (1) is second
                        [0.0, 0.0, 0.7]])  # hit at 1
    assert metrics.text_to_image_recall(sim_t2i, owner, 1) == pytest.approx(2 / 4)
    assert metrics.text_to_image_recall(sim_t2i, owner, 2) == pytest.approx(4 / 4)
    sim_i2t = sim_t2i.T  # image 0: captions 0 (0.9) -> hit; image 1: best is caption 2 (0.3) -> hit; image 2: 3
    assert metrics.image_to_text_recall(sim_i2t, owner, 1) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_classification_equals_sklearn_including_ties(seed):
    rng = np.random.default_rng(seed)
    n, c = 80, 12
    scores = rng.integers(0, 4, (n, c)).astype(float)  # coarse values: many ties
    labels = rng.integers(0, c, n)
    labels[:c] = np.arange(c)  # every class present
    for k in (1, 5):
        ours = metrics.top_k_accuracy(scores, labels, k)
        assert ours == pytest.approx(top_k_accuracy_score(labels, scores, k=k, labels=np.arange(c)))
    predicted = metrics.ranking(scores)[:, 0]
    conf = metrics.confusion_matrix(labels, predicted, c)
    assert metrics.mean_per_class_recall(conf) == pytest.approx(balanced_accuracy_score(labels, predicted))


def test_k_beyond_the_gallery_is_an_error():
    sim, owner = _random_set(0, images=4, per_image=(1, 2))
    with pytest.raises(InputError, match="only 4"):
        metrics.text_to_image_recall(sim, owner, 10)
