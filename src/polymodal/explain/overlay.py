"""The picture with its heatmap laid over it, the box around the peak and the peak marked."""

from __future__ import annotations

from typing import Any

import numpy as np

from polymodal.explain.grid import upsample
from polymodal.explain.types import Explanation

#: colour stops of the heatmap, low to high (a short "turbo"-like ramp: blue, cyan, green, yellow, red)
_STOPS = np.array([[48, 18, 59], [40, 150, 240], [30, 220, 140], [250, 220, 40], [220, 40, 20]], np.float32)


def colourise(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as (..., 3) uint8 colours along ``_STOPS``."""
    v = np.clip(np.asarray(values, np.float32), 0, 1) * (len(_STOPS) - 1)
    lo = np.minimum(np.floor(v).astype(int), len(_STOPS) - 2)
    t = (v - lo)[..., None]
    return (_STOPS[lo] * (1 - t) + _STOPS[lo + 1] * t).astype(np.uint8)


def overlay(image: Any, explanation: Explanation, alpha: float = 0.5) -> Any:
    """An RGB PIL image of the picture's size: the heatmap blended in (stronger where the score is higher),
    the box outlined and the peak marked. ``image`` is the decoded picture the explanation was made from."""
    from PIL import Image, ImageDraw

    w, h = explanation.width, explanation.height
    picture = np.asarray(image.convert("RGB"), np.float32)
    heat = upsample(explanation.grid, w, h)
    lo, hi = float(heat.min()), float(heat.max())
    level = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
    # low scores tint lightly, high scores strongly: the picture stays readable where nothing matches
    a = (alpha * (0.35 + 0.65 * level))[..., None]
    out = Image.fromarray((picture * (1 - a) + colourise(level).astype(np.float32) * a).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    line = max(2, round(max(w, h) / 250))
    x0, y0, x1, y1 = explanation.box
    draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=(255, 255, 255), width=line)
    px, py = explanation.peak
    r = 3 * line
    draw.ellipse((px - r, py - r, px + r, py + r), outline=(255, 255, 255), width=line)
    draw.line((px - 2 * r, py, px + 2 * r, py), fill=(255, 255, 255), width=max(1, line // 2))
    draw.line((px, py - 2 * r, px, py + 2 * r), fill=(255, 255, 255), width=max(1, line // 2))
    return out
