"""Retrieval and classification metrics, defined as CLIP_benchmark and scikit-learn define them.

Ranking rule, everywhere: items are ranked by score, and among equal scores the one with the higher index
ranks first — exactly scikit-learn's ``top_k_accuracy_score`` (reversed stable argsort), so that a tie can
never silently favour the "right" answer placed first in a hand-made case.
"""

from __future__ import annotations

import numpy as np

from polymodal.errors import InputError


def ranking(scores: np.ndarray) -> np.ndarray:
    """Indices of each row's items, best first (ties: higher index first)."""
    return np.argsort(scores, axis=1, kind="mergesort")[:, ::-1]


def check_k(k: int, gallery: int, what: str) -> None:
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    if k > gallery:
        raise InputError(f"R@{k} asked for, but the {what} gallery has only {gallery} items")


def text_to_image_recall(sim: np.ndarray, caption_image: np.ndarray, k: int) -> float:
    """Share of captions whose own image is among the k images scored highest for it.

    ``sim``: (captions, images); ``caption_image[c]``: the image caption c describes.
    """
    check_k(k, sim.shape[1], "image")
    top = ranking(sim)[:, :k]
    return float(np.mean((top == caption_image[:, None]).any(axis=1)))


def image_to_text_recall(sim: np.ndarray, caption_image: np.ndarray, k: int) -> float:
    """Share of images with at least one of their captions among the k captions scored highest.

    ``sim``: (images, captions).
    """
    check_k(k, sim.shape[1], "caption")
    top = ranking(sim)[:, :k]
    own = caption_image[top] == np.arange(sim.shape[0])[:, None]
    return float(np.mean(own.any(axis=1)))


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of samples whose true class is among their k best-scored classes."""
    check_k(k, scores.shape[1], "class")
    top = ranking(scores)[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(true class, predicted class) counts."""
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (labels, predicted), 1)
    return out


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)


def mean_per_class_recall(confusion: np.ndarray) -> float:
    """Balanced accuracy: the mean over classes that have samples of their recall."""
    recall = per_class_recall(confusion)
    return float(np.nanmean(recall))


def temporal_iou(predicted: tuple[float, float], truth: tuple[float, float]) -> float:
    """Intersection over union of two time ranges (start, end); 0 when they do not overlap.

    As in moment retrieval benchmarks (Charades-STA, QVHighlights): the overlap's length over the length of
    the span both cover. An empty or reversed range has no length and an IoU of 0.
    """
    (a0, a1), (b0, b1) = predicted, truth
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0) if inter > 0 else (max(0.0, a1 - a0) + max(0.0, b1 - b0))
    return float(inter / union) if union > 0 else 0.0


def recall_at_iou(ious: np.ndarray, threshold: float) -> float:
    """R@1 at an IoU threshold: the share of queries whose top moment overlaps the truth by at least it."""
    if not 0 < threshold <= 1:
        raise InputError(f"an IoU threshold must be in (0, 1], got {threshold}")
    ious = np.asarray(ious, np.float64)
    return float(np.mean(ious >= threshold)) if ious.size else 0.0
