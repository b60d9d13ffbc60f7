"""Shot boundaries from content change, and the segments a video is cut into.

The measure is PySceneDetect's ContentDetector: the mean absolute difference of two frames' hue, saturation
and value, on frames shrunk to a few thousand pixels (0..255 scale). A hard cut scores far above the
threshold (different photos: 40-120), motion inside a shot stays well below it (pans: 2-15).

These functions work on plain arrays, so the decoder (``media.video``) can feed them whatever frames it
decoded, and tests can check them on hand-made sequences.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: PySceneDetect's default ContentDetector threshold, on the same 0..255 HSV scale
CUT_THRESHOLD = 27.0
#: two keyframes this different may hide a cut between them, so the frames between are decoded and compared;
#: lower than CUT_THRESHOLD, since keyframes seconds apart differ by motion as well
SUSPECT_THRESHOLD = 12.0
#: cuts closer than this to the previous one are dropped (flashes, a few frames of a transition)
MIN_SHOT_SECONDS = 0.5
#: size of the frames compared (width, height); the aspect does not matter for a difference measure
FEATURE_SIZE = (64, 36)


def hsv_feature(rgb: np.ndarray) -> np.ndarray:
    """HSV of a small RGB frame (H, W, 3 uint8) as float32 on 0..255, the input of ``content_delta``."""
    rgb = rgb.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    c = v - rgb.min(axis=-1)
    s = np.where(v > 0, c / np.maximum(v, 1e-6), 0.0)
    safe = np.maximum(c, 1e-6)
    h = np.where(v == r, (g - b) / safe % 6, np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = np.where(c > 0, h / 6.0, 0.0)
    return (np.stack([h, s, v], axis=-1) * 255.0).astype(np.float32)


def content_delta(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute HSV difference of two ``hsv_feature`` arrays (0 identical, ~255 opposite)."""
    return float(np.abs(a - b).mean())


def find_cuts(times: Sequence[float], features: Sequence[np.ndarray], threshold: float = CUT_THRESHOLD,
              min_shot: float = MIN_SHOT_SECONDS) -> list[float]:
    """Times of the frames that start a new shot, in a run of consecutive decoded frames.

    A cut is placed on the first frame of the new shot; of two cuts closer than ``min_shot``, the stronger
    one is kept.
    """
    cuts: list[tuple[float, float]] = []  # (time, strength)
    for i in range(1, len(features)):
        delta = content_delta(features[i - 1], features[i])
        if delta < threshold:
            continue
        if cuts and times[i] - cuts[-1][0] < min_shot:
            if delta > cuts[-1][1]:
                cuts[-1] = (times[i], delta)
            continue
        cuts.append((times[i], delta))
    return [t for t, _ in cuts]


def merge_cuts(cuts: Sequence[float], start: float, duration: float, min_shot: float = MIN_SHOT_SECONDS) -> list[float]:
    """Sorted cuts strictly inside (start, start + duration), none closer than ``min_shot`` to another or an end."""
    out: list[float] = []
    end = start + duration
    for t in sorted(cuts):
        if t - start < min_shot or end - t < min_shot:
            continue
        if out and t - out[-1] < min_shot:
            continue
        out.append(t)
    return out


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    shot: int  # index of the shot it belongs to

    @property
    def duration(self) -> float:
        return self.end - self.start


def shots_from_cuts(cuts: Sequence[float], start: float, end: float) -> list[Span]:
    bounds = [start, *cuts, end]
    return [Span(a, b, i) for i, (a, b) in enumerate(itertools.pairwise(bounds)) if b > a]


def split_shots(shots: Sequence[Span], max_seconds: float) -> list[Span]:
    """Each shot cut into equal pieces of at most ``max_seconds`` (a 25 s shot at 10 s: three of 8.3 s)."""
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    out = []
    for shot in shots:
        n = max(1, math.ceil(shot.duration / max_seconds - 1e-9))
        step = shot.duration / n
        out += [Span(shot.start + i * step, shot.start + (i + 1) * step if i < n - 1 else shot.end, shot.shot)
                for i in range(n)]
    return out


def sample_times(span: Span, n: int) -> list[float]:
    """``n`` times spread evenly inside a segment, at the centres of n equal parts (never on a cut)."""
    return [span.start + (i + 0.5) * span.duration / n for i in range(n)]
