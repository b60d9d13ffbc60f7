"""Recall@K for paired image–text retrieval, both ways."""

from __future__ import annotations

import numpy as np

KS = (1, 5, 10)


def _ranks(sim: np.ndarray) -> np.ndarray:
    """Rank of the paired item (row i pairs with column i); ties count against it, so a model that maps
    everything to one point scores 0, not 1."""
    correct = np.diag(sim)[:, None]
    return (sim > correct).sum(1) + (sim == correct).sum(1) - 1


def recall_at_k(image: np.ndarray, text: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """``t2i_R@K``: share of texts whose image is among the K nearest images; ``i2t_R@K`` the other way."""
    if len(image) != len(text) or len(image) == 0:
        raise ValueError(f"need as many images as texts, and some: {len(image)} vs {len(text)}")
    sim = np.asarray(text, np.float64) @ np.asarray(image, np.float64).T  # (texts, images)
    t2i, i2t = _ranks(sim), _ranks(sim.T)
    out: dict[str, float] = {}
    for k in ks:
        out[f"t2i_R@{k}"] = float((t2i < k).mean())
    for k in ks:
        out[f"i2t_R@{k}"] = float((i2t < k).mean())
    return out
