"""Synthetic features for the fusion tasks of issue 7, with known answers.

Each modality's feature is a class-dependent code vector from its own random codebook, plus noise — what a
frozen encoder gives for "an image of colour c" and "a text naming colour c", without running one.
"""

from __future__ import annotations

import numpy as np

from polymodal.fusion import FeatureSet

D = 32


def _codebooks(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.random.default_rng(100).normal(size=(k, D)), np.random.default_rng(200).normal(size=(k, D))


def matching(n: int, seed: int, colours: int = 4, noise: float = 0.3) -> FeatureSet:
    """Label 1 when the colour named by the text is the colour of the image; each modality alone says
    nothing about the label (both colours are uniform), only their agreement does."""
    rng = np.random.default_rng(seed)
    img_book, txt_book = _codebooks(colours)
    a = rng.integers(0, colours, n)
    same = rng.random(n) < 0.5
    b = np.where(same, a, (a + rng.integers(1, colours, n)) % colours)
    img = img_book[a] + noise * rng.normal(size=(n, D))
    txt = txt_book[b] + noise * rng.normal(size=(n, D))
    return FeatureSet(("image", "text"), [img.astype(np.float32), txt.astype(np.float32)], np.ones((n, 2), bool),
                      same.astype(np.int64))


def independent(n: int, seed: int, classes: int = 3, noise: float = 3.0) -> FeatureSet:
    """Each modality is independent noisy evidence of the label: either alone is informative, both are better."""
    rng = np.random.default_rng(seed)
    img_book, txt_book = _codebooks(classes)
    y = rng.integers(0, classes, n)
    img = img_book[y] + noise * rng.normal(size=(n, D))
    txt = txt_book[y] + noise * rng.normal(size=(n, D))
    return FeatureSet(("image", "text"), [img.astype(np.float32), txt.astype(np.float32)], np.ones((n, 2), bool),
                      y.astype(np.int64))
