"""Classification metrics: accuracy, macro-F1 and a per-class table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int  # true examples of this class


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    macro_f1: float  # unweighted mean of per-class F1, so a rare class counts as much as a common one
    per_class: tuple[ClassMetrics, ...]
    n: int

    def summary(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1}

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "n": self.n, "per_class": [asdict(c) for c in self.per_class]}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> Metrics:
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    per_class = []
    for i, label in enumerate(classes):
        tp = int(((y_pred == i) & (y_true == i)).sum())
        predicted = int((y_pred == i).sum())
        support = int((y_true == i).sum())
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class.append(ClassMetrics(label, p, r, f1, support))
    # Classes absent from this split have no F1 to average (as scikit-learn's labels=present behaviour).
    seen = [c.f1 for i, c in enumerate(per_class) if c.support or bool((y_pred == i).any())]
    n = len(y_true)
    return Metrics(
        accuracy=float((y_true == y_pred).mean()) if n else 0.0,
        macro_f1=float(np.mean(seen)) if seen else 0.0,
        per_class=tuple(per_class),
        n=n,
    )
