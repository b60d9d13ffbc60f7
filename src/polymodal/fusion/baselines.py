"""Two reference classifiers on the same pooled features, so ``train --compare`` shows whether a fusion model
earns its keep: logistic regression and scikit-learn's MLP classifier (issue 16).

Both see what early fusion sees — every modality's pooled feature, zeros where one is missing, and the
presence mask — standardised with the training rows' statistics. They are fitted on the training split only
(scikit-learn's MLP stops on its own loss), and scored on the same validation and test rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from polymodal.errors import MissingDependencyError
from polymodal.fusion.features import FeatureSet
from polymodal.fusion.metrics import Metrics, classification_metrics

#: the names a --compare table, its JSON and its plot give them (``mlp`` is already an early-fusion joint)
BASELINES = ("baseline_logreg", "baseline_mlp")


@dataclass
class BaselineResult:
    kind: str
    test: Metrics
    val: Metrics
    seconds: float  # fitting time
    model: Any = None  # the fitted scikit-learn pipeline (takes ``pooled_matrix`` rows)


def pooled_matrix(fs: FeatureSet) -> np.ndarray:
    """(N, sum D_m + M): the pooled features side by side, then the presence mask."""
    return np.hstack([f for f in fs.features] + [fs.present.astype(np.float32)])


def fit_baseline(kind: str, train: FeatureSet, val: FeatureSet, test: FeatureSet, classes: list[str],
                 seed: int = 0) -> BaselineResult:
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        raise MissingDependencyError("scikit-learn", "the --compare baselines") from exc
    assert train.labels is not None and val.labels is not None and test.labels is not None
    if kind == "baseline_logreg":
        clf = LogisticRegression(max_iter=2000)
    elif kind == "baseline_mlp":
        clf = MLPClassifier(max_iter=500, random_state=seed)  # the defaults a first try would use
    else:
        raise ValueError(f"unknown baseline {kind!r}; choose from {', '.join(BASELINES)}")
    start = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the scores say how well it did
        model = make_pipeline(StandardScaler(), clf).fit(pooled_matrix(train), train.labels)
    seconds = time.perf_counter() - start
    scores = [classification_metrics(s.labels, model.predict(pooled_matrix(s)), classes)  # type: ignore[arg-type]
              for s in (test, val)]
    return BaselineResult(kind, scores[0], scores[1], seconds, model)
