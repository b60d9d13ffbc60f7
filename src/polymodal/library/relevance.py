"""How sure a hit is (``confidence``), and the floor below which a search does not show it.

A cosine means different things for different models and queries: lite's text-to-photo cosines for right
answers run from 0.17 to 0.73, and wrong ones reach 0.44. So a hit is not judged by its cosine but by how far
it stands out from what the *same query* scores on unrelated pictures: the visual background of
``calibration`` (fixed synthetic pictures, embedded once per model and carried in exported bundles), as the
fusion of visual and speech evidence already does (``moments``). With ``z`` = (cosine - background mean) /
background spread, the evidence is ``log(1 + max(z, 0))``, and

    confidence = 1 / (1 + exp(-(SLOPE * evidence + OFFSET)))

a logistic fitted on labelled queries: the bundled photos of scikit-image and scikit-learn, each named by
two or three queries, every query scored against every photo (``benchmarks/relevance_floor.py`` fits it,
prints these constants and measures the cut with each query held out of its own fit). ``confidence`` is
therefore the share of right answers among hits that stood out as much in that labelled set: calibrated
there, an estimate elsewhere. ``FLOOR`` is the confidence a hit needs to be shown, chosen on the same data as
the cut that keeps the most right answers per wrong one shown (F1); ``--all`` shows everything.

What it does not cover: a query by example (``similar``, ``--image``): a picture-to-picture cosine has another
scale against the background and no labelled set calibrates it, so those hits carry no confidence and no
floor applies. Once a library holds video or audio, the fused score of weighted fusion is already evidence on
this scale (a photo's fused score is its evidence; a moment adds the other modality's support), and the cut
applies to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: fitted by ``python benchmarks/relevance_floor.py`` (see its section of benchmarks/RESULTS.md)
SLOPE = 2.320
OFFSET = -5.304
#: confidence below which a hit is not shown unless all hits are asked for
FLOOR = 0.297
#: a background spread below this is treated as this (a degenerate model scoring everything alike)
MIN_SPREAD = 0.01


def evidence(z: float) -> float:
    """How far above the background, on a log scale that brings the modalities' long tails together."""
    return math.log1p(max(z, 0.0))


def zscores(scores: Sequence[float] | np.ndarray, background: Sequence[float] | np.ndarray) -> np.ndarray:
    """Each score as spreads above the mean of the query's scores on the background."""
    ref = np.asarray(background, np.float64)
    spread = max(float(ref.std()), MIN_SPREAD)
    return (np.asarray(scores, np.float64) - float(ref.mean())) / spread


def confidence(evidence_value: float) -> float:
    """The calibrated probability (0-1) that a hit with this evidence is a right answer."""
    return 1.0 / (1.0 + math.exp(-(SLOPE * evidence_value + OFFSET)))
