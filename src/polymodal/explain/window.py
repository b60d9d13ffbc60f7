"""The model-agnostic way to point: embed crops of the picture and score each against the text.

Multi-scale sliding windows, the occlusion idea turned around (Zeiler & Fergus, ECCV 2014, slid an occluder
to see where the score drops; here only the window is shown, so any encoder that embeds images works,
CLIP, SigLIP and bundles included). A cell of the grid gets the mean score of the windows whose area
covers its centre; small windows make the map sharp, large ones keep an object that no small window holds
whole in view. Slower than a class-activation map: one forward pass per window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: window sides as shares of the picture's short side; each scale slides by half its side
SCALES: tuple[float, ...] = (0.6, 0.4, 0.3)
#: cells of the grid along the picture's long side
GRID_LONG_SIDE = 24


def windows(width: int, height: int, scales: Sequence[float] = SCALES) -> list[tuple[int, int, int, int]]:
    """Square windows (x0, y0, x1, y1) at each scale, half-overlapping, the last of each row and column
    flush with the picture's edge so no strip is left out."""
    out: list[tuple[int, int, int, int]] = []
    short = min(width, height)
    for share in scales:
        side = max(8, round(short * share))
        step = max(1, side // 2)
        xs = _starts(width, side, step)
        ys = _starts(height, side, step)
        out.extend((x, y, min(width, x + side), min(height, y + side)) for y in ys for x in xs)
    return out


def _starts(length: int, side: int, step: int) -> list[int]:
    if side >= length:
        return [0]
    starts = list(range(0, length - side + 1, step))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def window_grid(encoder: Any, image: Any, text_embedding: np.ndarray, scales: Sequence[float] = SCALES,
                long_side: int = GRID_LONG_SIDE) -> np.ndarray:
    """The (rows, cols) grid of mean window scores for one decoded RGB PIL image."""
    width, height = image.size
    boxes = windows(width, height, scales)
    crops = [image.crop(b) for b in boxes]
    emb = encoder.encode_images(crops)
    scores = emb @ np.asarray(text_embedding, dtype=np.float32)
    cols = max(1, round(long_side * width / max(width, height)))
    rows = max(1, round(long_side * height / max(width, height)))
    cx = (np.arange(cols) + 0.5) * width / cols
    cy = (np.arange(rows) + 0.5) * height / rows
    total = np.zeros((rows, cols), np.float64)
    count = np.zeros((rows, cols), np.float64)
    for (x0, y0, x1, y1), s in zip(boxes, scores):
        inside = ((cy >= y0) & (cy < y1))[:, None] & ((cx >= x0) & (cx < x1))[None, :]
        total[inside] += float(s)
        count[inside] += 1
    # every cell centre lies in some window (the windows tile the picture), but a 1-pixel picture is still safe
    grid = np.where(count > 0, total / np.maximum(count, 1), float(scores.min()) if len(scores) else 0.0)
    return grid.astype(np.float32)
