"""Peak, box and windows: the geometry every method shares, on made-up grids (no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polymodal.explain.grid import peak_and_box, upsample
from polymodal.explain.types import Explanation
from polymodal.explain.window import windows


def test_peak_and_box_find_a_blob_in_picture_pixels() -> None:
    grid = np.zeros((8, 12), np.float32)
    grid[2:4, 8:10] = 1.0  # cells 8-9 of 12 across, 2-3 of 8 down, on a 1200 x 800 picture: x 800-1000, y 200-400
    (x, y), (x0, y0, x1, y1) = peak_and_box(grid, 1200, 800)
    assert 800 <= x < 1000 and 200 <= y < 400
    assert 700 <= x0 < 850 and 150 <= y0 < 250 and 950 < x1 <= 1100 and 350 < y1 <= 450


def test_box_is_the_region_holding_the_peak_not_the_second_blob() -> None:
    grid = np.zeros((10, 10), np.float32)
    grid[1, 1] = 1.0
    grid[8, 8] = 0.9
    (x, y), box = peak_and_box(grid, 100, 100)
    assert x < 30 and y < 30
    assert box[2] <= 40 and box[3] <= 40  # the weaker blob far away is not in it


def test_flat_grid_points_somewhere_and_boxes_everything() -> None:
    (x, y), box = peak_and_box(np.ones((3, 4), np.float32), 40, 30)
    assert 0 <= x < 40 and 0 <= y < 30
    assert box == (0, 0, 40, 30)


def test_one_pixel_picture() -> None:
    (x, y), box = peak_and_box(np.ones((1, 1), np.float32), 1, 1)
    assert (x, y) == (0, 0) and box == (0, 0, 1, 1)


def test_upsample_keeps_shape_and_range() -> None:
    out = upsample(np.array([[0.0, 1.0]], np.float32), 10, 3)
    assert out.shape == (3, 10)
    assert out.min() >= 0.0 and out.max() <= 1.0 and out[0, 0] < out[0, -1]


@pytest.mark.parametrize("size", [(640, 480), (300, 1000), (50, 50), (20, 7)])
def test_windows_cover_the_whole_picture(size: tuple[int, int]) -> None:
    w, h = size
    covered = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in windows(w, h):
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        covered[y0:y1, x0:x1] = True
    assert covered.all()


def test_explanation_json_form() -> None:
    e = Explanation(width=4, height=2, grid=np.array([[0.1, 0.2]], np.float32), peak=(3, 1), box=(2, 0, 4, 2),
                    method="cam", text="a cat", model="lite")
    d = json.loads(json.dumps(e.to_dict()))
    assert d["width"] == 4 and d["height"] == 2 and d["peak"] == [3, 1] and d["box"] == [2, 0, 4, 2]
    assert d["grid"] == [[0.1, 0.2]]
