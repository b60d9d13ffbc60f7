"""Evaluation with the definitions of CLIP_benchmark and scikit-learn: retrieval Recall@K, zero-shot
accuracy, and reports (JSON, Markdown with plots)."""

from polymodal.eval.datasets import load_image_folder, load_retrieval
from polymodal.eval.tasks import RetrievalResult, ZeroShotResult, evaluate_retrieval, evaluate_zeroshot

__all__ = [
    "RetrievalResult",
    "ZeroShotResult",
    "evaluate_retrieval",
    "evaluate_zeroshot",
    "load_image_folder",
    "load_retrieval",
]
