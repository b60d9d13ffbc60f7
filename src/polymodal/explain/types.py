"""The explanation of one image against one text, as plain data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Explanation:
    """Where in a picture a text matches, in pixels of the picture as displayed (EXIF orientation applied).

    ``grid`` covers the whole picture: cell (r, c) spans columns ``c * width / cols`` to ``(c + 1) * width / cols``
    and the same for rows, so a grid of any shape maps back to pixels without knowing how it was made.
    """

    width: int  # of the picture as displayed
    height: int
    grid: np.ndarray  # (rows, cols) float32 scores; higher = matches the text better; scale depends on the method
    peak: tuple[int, int]  # (x, y) pixel of the best match
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1): the region around the peak, x1/y1 exclusive
    method: str  # "cam", "window" or "maskclip"
    text: str = ""
    model: str = ""  # the encoder spec it was computed with

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"width", "height", "grid": [[...]], "peak": [x, y], "box": [x0, y0, x1, y1], ...}``."""
        return {
            "width": self.width,
            "height": self.height,
            "grid": [[round(float(v), 5) for v in row] for row in self.grid],
            "peak": list(self.peak),
            "box": list(self.box),
            "method": self.method,
            "text": self.text,
            "model": self.model,
        }
