"""From a score grid over a picture to its peak pixel and the region around it."""

from __future__ import annotations

import numpy as np

#: the region around the peak: the connected cells scoring at least this share of the way from the grid's
#: median to its peak (the median, not the minimum, so one dark corner does not widen every box)
BOX_LEVEL = 0.5
#: the side the grid is smoothed up to before the peak is read: finer than any grid, cheap at any picture size
_WORK_SIDE = 256


def upsample(grid: np.ndarray, width: int, height: int) -> np.ndarray:
    """The grid resized bilinearly to ``height`` x ``width``, cell centres on the centres of the areas they cover."""
    from PIL import Image

    img = Image.fromarray(np.asarray(grid, dtype=np.float32), mode="F")
    return np.asarray(img.resize((int(width), int(height)), Image.Resampling.BILINEAR), dtype=np.float32)


def peak_and_box(grid: np.ndarray, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """The best-scoring pixel (x, y) and the box (x0, y0, x1, y1) of the high region holding it, in picture pixels."""
    scale = _WORK_SIDE / max(width, height)
    ww, wh = max(1, round(width * scale)), max(1, round(height * scale))
    fine = upsample(grid, ww, wh)
    py, px = np.unravel_index(int(np.argmax(fine)), fine.shape)
    top, floor = float(fine[py, px]), float(np.median(fine))
    mask = fine >= floor + BOX_LEVEL * (top - floor) if top > floor else np.ones_like(fine, dtype=bool)
    region = _component(mask, int(py), int(px))
    ys, xs = np.nonzero(region)
    sx, sy = width / ww, height / wh
    peak = (min(width - 1, int((px + 0.5) * sx)), min(height - 1, int((py + 0.5) * sy)))
    box = (int(xs.min() * sx), int(ys.min() * sy), min(width, int(np.ceil((xs.max() + 1) * sx))),
           min(height, int(np.ceil((ys.max() + 1) * sy))))
    return peak, box


def _component(mask: np.ndarray, y: int, x: int) -> np.ndarray:
    """The 4-connected part of ``mask`` holding (y, x), grown by repeated dilation (maps here are small)."""
    region = np.zeros_like(mask)
    region[y, x] = True
    while True:
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= mask
        if np.array_equal(grown, region):
            return region
        region = grown
