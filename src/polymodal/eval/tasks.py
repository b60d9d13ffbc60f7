"""The evaluation tasks: retrieval (text↔image Recall@K) and zero-shot classification."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from polymodal.eval import metrics
from polymodal.eval.datasets import ClassificationSet, RetrievalSet
from polymodal.eval.embed import Progress, embed_images, embed_texts
from polymodal.models.base import Encoder
from polymodal.zeroshot import label_embeddings

DEFAULT_KS = (1, 5, 10)


@dataclass
class RetrievalResult:
    model: str
    dataset: str
    images: int
    captions: int
    text_to_image: dict[str, float]  # {"R@1": ..., "R@5": ..., "R@10": ...}
    image_to_text: dict[str, float]
    curve_ks: list[int] = field(default_factory=list)  # k = 1..min(50, gallery) for plots
    curve_t2i: list[float] = field(default_factory=list)
    curve_i2t: list[float] = field(default_factory=list)
    embedded: int = 0  # images computed (the rest came from the cache)

    def summary(self) -> dict:
        return {"model": self.model, "dataset": self.dataset, "images": self.images, "captions": self.captions,
                "text_to_image": self.text_to_image, "image_to_text": self.image_to_text}


@dataclass
class ZeroShotResult:
    model: str
    dataset: str
    acc1: float
    acc5: float | None  # None when there are 5 classes or fewer
    mean_per_class_recall: float
    classes: list[str]
    per_class_recall: list[float]
    support: list[int]
    confusion: list[list[int]]
    templates: int
    embedded: int = 0

    def summary(self) -> dict:
        return {"model": self.model, "dataset": self.dataset, "acc1": self.acc1, "acc5": self.acc5,
                "mean_per_class_recall": self.mean_per_class_recall,
                "per_class": [{"class": c, "recall": r, "support": s}
                              for c, r, s in zip(self.classes, self.per_class_recall, self.support)]}


def evaluate_retrieval(
    data: RetrievalSet, encoder: Encoder, ks: Sequence[int] = DEFAULT_KS, progress: Progress | None = None
) -> RetrievalResult:
    for k in ks:  # fail before any embedding work
        metrics.check_k(k, len(data.images), "image")
        metrics.check_k(k, len(data.captions), "caption")
    img, computed = embed_images(encoder, data.images, progress)
    txt = embed_texts(encoder, data.captions)
    t2i, i2t = txt @ img.T, img @ txt.T
    curve = list(range(1, min(50, len(data.images), len(data.captions)) + 1))
    return RetrievalResult(
        model=encoder.name, dataset=data.name, images=len(data.images), captions=len(data.captions),
        text_to_image={f"R@{k}": metrics.text_to_image_recall(t2i, data.caption_image, k) for k in ks},
        image_to_text={f"R@{k}": metrics.image_to_text_recall(i2t, data.caption_image, k) for k in ks},
        curve_ks=curve,
        curve_t2i=[metrics.text_to_image_recall(t2i, data.caption_image, k) for k in curve],
        curve_i2t=[metrics.image_to_text_recall(i2t, data.caption_image, k) for k in curve],
        embedded=computed,
    )


def evaluate_zeroshot(
    data: ClassificationSet, encoder: Encoder, templates: str | Sequence[str] | None = "openai",
    progress: Progress | None = None,
) -> ZeroShotResult:
    from polymodal.zeroshot import get_templates

    temps = get_templates(templates)
    img, computed = embed_images(encoder, data.images, progress)
    scores = img @ label_embeddings(encoder, data.classes, temps, truncate=True).T
    predicted = metrics.ranking(scores)[:, 0]
    confusion = metrics.confusion_matrix(data.labels, predicted, len(data.classes))
    recall = metrics.per_class_recall(confusion)
    return ZeroShotResult(
        model=encoder.name, dataset=data.name,
        acc1=metrics.top_k_accuracy(scores, data.labels, 1),
        acc5=metrics.top_k_accuracy(scores, data.labels, 5) if len(data.classes) > 5 else None,
        mean_per_class_recall=metrics.mean_per_class_recall(confusion),
        classes=list(data.classes), per_class_recall=[float(x) for x in recall],
        support=[int(x) for x in confusion.sum(axis=1)], confusion=confusion.tolist(),
        templates=len(temps), embedded=computed,
    )
