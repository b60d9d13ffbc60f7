"""Text detection around PP-OCR's DB network (Liao et al., "Real-time Scene Text Detection with
Differentiable Binarization", AAAI 2020), without OpenCV.

The steps follow rapidocr-onnxruntime's ``ch_ppocr_det`` (itself PaddleOCR's ``DBPostProcess``): threshold
the probability map, dilate by 2x2, take each region's outline, fit a minimum-area rectangle, keep it if the
mean probability inside is high enough, grow it by ``area * 1.6 / perimeter`` (the shrink the network was
trained on, undone) and fit again. OpenCV's ``findContours`` / ``minAreaRect`` / ``fillPoly`` /
``warpPerspective`` are replaced by contourpy (matplotlib's contour engine, already installed), shapely and
Pillow: rapidocr's own code imports ``cv2``, whose GUI build (the one it depends on) needs libGL and fails to
import on a bare server, so polymodal reads only its model files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: the network sees multiples of 32 (its feature pyramid halves five times)
STRIDE = 32
#: probability above which a pixel is text, and the mean a region needs to be kept (PaddleOCR's defaults)
PIXEL_THRESHOLD = 0.3
BOX_THRESHOLD = 0.5
UNCLIP_RATIO = 1.6
#: a region thinner than this (in detection-map pixels) is noise
MIN_SIZE = 3
#: regions fitted per picture, largest first: a picture of confetti or a page of 6 pt print yields tens of
#: thousands of specks, and fitting each costs ~50 µs in Python
MAX_CANDIDATES = 3000
#: PP-OCR's detector normalises each channel with mean 0.5, std 0.5 (not ImageNet's statistics)
_MEAN, _STD = 0.5, 0.5


@dataclass(frozen=True)
class DetInput:
    tensor: np.ndarray  # (1, 3, H, W) float32
    scale_x: float  # picture pixels per detection-map pixel
    scale_y: float


def prepare(image: Any, max_side: int, min_side: int) -> DetInput:
    """The picture resized so its long side is at most ``max_side`` (and its short side, for small pictures,
    raised towards ``min_side`` within that), both sides multiples of 32."""
    from PIL import Image

    w, h = image.size
    ratio = min(max_side / max(w, h), max(1.0, min_side / min(w, h)))
    rw = max(STRIDE, round(w * ratio / STRIDE) * STRIDE)
    rh = max(STRIDE, round(h * ratio / STRIDE) * STRIDE)
    resized = image.resize((rw, rh), Image.Resampling.BILINEAR, reducing_gap=3.0)
    arr = (np.asarray(resized, dtype=np.float32) / 255.0 - _MEAN) / _STD
    return DetInput(arr.transpose(2, 0, 1)[None].copy(), w / rw, h / rh)


def boxes_from_map(prob: np.ndarray, det: DetInput, width: int, height: int) -> list[tuple[np.ndarray, float]]:
    """Quads (4x2, clockwise from top-left, in picture pixels) with their mean text probability, largest first."""
    import contourpy

    bitmap = prob > PIXEL_THRESHOLD
    grown = bitmap.copy()  # OpenCV's 2x2 dilation: each pixel also takes its upper, left and upper-left pixel
    grown[1:, :] |= bitmap[:-1, :]
    grown[:, 1:] |= bitmap[:, :-1]
    grown[1:, 1:] |= bitmap[:-1, :-1]
    if not grown.any():
        return []
    # A zero border closes the outline of a region that touches the edge; the outline at 0.5 runs half a
    # pixel outside the region's pixel centres (OpenCV's runs through them), well inside the unclip margin.
    padded = np.pad(grown, 1).astype(np.float32)
    lines = contourpy.contour_generator(z=padded, line_type=contourpy.LineType.Separate).lines(0.5)
    outlines = [np.asarray(line, dtype=np.float64) - 1.0 for line in lines if len(line) >= 4]
    outlines.sort(key=_area, reverse=True)
    out: list[tuple[np.ndarray, float]] = []
    for outline in outlines[:MAX_CANDIDATES]:
        fitted = _min_rect(outline)
        if fitted is None or fitted[1] < MIN_SIZE:
            continue
        score = _mean_inside(prob, fitted[0])
        if score < BOX_THRESHOLD:
            continue
        grown_rect = _min_rect(_unclip(fitted[0]))
        if grown_rect is None or grown_rect[1] < MIN_SIZE + 2:
            continue
        quad = grown_rect[0] * np.array([det.scale_x, det.scale_y])
        quad[:, 0] = np.clip(quad[:, 0], 0, width - 1)
        quad[:, 1] = np.clip(quad[:, 1], 0, height - 1)
        quad = _clockwise(quad)
        if np.linalg.norm(quad[0] - quad[1]) <= 3 or np.linalg.norm(quad[0] - quad[3]) <= 3:
            continue
        out.append((quad, score))
    return out


def crop(image: Any, quad: np.ndarray) -> Any:
    """The quad cut out and straightened (a tall crop turned to lie flat), as PaddleOCR's
    ``get_rotate_crop_image`` does with a perspective warp."""
    from PIL import Image

    w = max(1, int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3]))))
    h = max(1, int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
    tl, tr, br, bl = quad
    # QUAD maps the output rectangle's corners onto the source's upper-left, lower-left, lower-right, upper-right
    data = (*tl, *bl, *br, *tr)
    out = image.transform((w, h), Image.Transform.QUAD, data=tuple(float(v) for v in data),
                          resample=Image.Resampling.BICUBIC)
    if h / w >= 1.5:
        out = out.transpose(Image.Transpose.ROTATE_90)
    return out


def _area(outline: np.ndarray) -> float:
    x, y = outline[:, 0], outline[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _min_rect(points: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The minimum-area rectangle around ``points`` as 4 corners (PaddleOCR's ``get_mini_boxes`` order:
    top-left, top-right, bottom-right, bottom-left) and its shorter side."""
    import shapely

    rect = shapely.oriented_envelope(shapely.multipoints(points))
    if rect.geom_type != "Polygon":
        return None  # the points are on one line: no area
    corners = np.asarray(rect.exterior.coords)[:4]
    sides = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    pts = sorted(corners.tolist(), key=lambda p: p[0])
    left = sorted(pts[:2], key=lambda p: p[1])
    right = sorted(pts[2:], key=lambda p: p[1])
    return np.array([left[0], right[0], right[1], left[1]]), float(min(sides[0], sides[1]))


def _mean_inside(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside ``quad`` (PaddleOCR's "fast" box score, over the quad's bounding box)."""
    from PIL import Image, ImageDraw

    h, w = prob.shape
    x0 = int(np.clip(np.floor(quad[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(quad[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(quad[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(quad[:, 1].max()), 0, h - 1))
    mask = Image.new("1", (x1 - x0 + 1, y1 - y0 + 1), 0)
    ImageDraw.Draw(mask).polygon([(float(x) - x0, float(y) - y0) for x, y in quad.astype(np.int32)], fill=1)
    inside = np.asarray(mask, dtype=bool)
    region = prob[y0:y1 + 1, x0:x1 + 1]
    return float(region[inside].mean()) if inside.any() else 0.0


def _unclip(quad: np.ndarray) -> np.ndarray:
    """Grow the quad by area * ratio / perimeter on every side (DB's shrunk text kernels, undone)."""
    import pyclipper

    area = _area(quad)
    perimeter = float(np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1).sum())
    offset = pyclipper.PyclipperOffset()
    offset.AddPath([tuple(p) for p in quad.tolist()], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = offset.Execute(area * UNCLIP_RATIO / max(perimeter, 1e-6))
    if not grown:
        return quad
    return np.asarray(max(grown, key=len), dtype=np.float64)


def _clockwise(quad: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left (two left-most points make the left side)."""
    by_x = quad[np.argsort(quad[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]])

