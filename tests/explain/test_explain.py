"""polymodal.explain through its real paths: lite's class-activation maps, sliding windows on a tiny random
CLIP, EXIF orientation, and refused inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polymodal.errors import ImageDecodeError, InputError
from polymodal.explain import explain, resolve_method
from polymodal.explain.pointing import compose_scene
from polymodal.explain.window import GRID_LONG_SIDE


def _rotated_scene(tmp_path: Path, photos: dict[str, Path]) -> tuple[Path, tuple[int, int, int, int]]:
    """A portrait scene (cat and coffee) stored as a landscape JPEG with EXIF orientation 6 (rotate 90° clockwise
    to display); returns the file and the cat's box as displayed."""
    scene = compose_scene(11, {"cat": photos["cat"], "coffee": photos["coffee"]}, objects=2, size=(512, 768),
                          side=(200, 240))
    stored = scene.image.rotate(90, expand=True)  # what a camera held sideways writes
    exif = stored.getexif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, quality=92, exif=exif)
    cat = next(o.box for o in scene.objects if o.name == "cat")
    return path, cat


@pytest.mark.slow
def test_cam_on_an_exif_rotated_photo_points_where_the_cat_is_displayed(
        tmp_path: Path, photos: dict[str, Path], cam_lite: Any) -> None:
    path, (x0, y0, x1, y1) = _rotated_scene(tmp_path, photos)
    e = explain(path, "a cat", cam_lite)
    assert (e.width, e.height) == (512, 768) and e.method == "cam"
    assert e.grid.ndim == 2 and e.grid.shape == (24, 16)  # one cell per 32 px of the 768-pixel long side
    px, py = e.peak
    assert x0 <= px < x1 and y0 <= py < y1
    bx0, by0, bx1, by1 = e.box
    overlap = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
    assert overlap >= 0.5 * (bx1 - bx0) * (by1 - by0)  # the box is mostly on the cat, as displayed


@pytest.mark.slow
def test_window_on_a_tiny_random_clip_gives_a_grid_over_the_picture(tiny_clip: Path) -> None:
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8))
    e = explain(image, "a cat", str(tiny_clip))  # auto: window for a model that is not lite
    assert e.method == "window"
    assert e.grid.shape == (round(GRID_LONG_SIDE * 120 / 200), GRID_LONG_SIDE)
    assert np.isfinite(e.grid).all() and e.grid.dtype == np.float32
    assert 0 <= e.peak[0] < 200 and 0 <= e.peak[1] < 120
    x0, y0, x1, y1 = e.box
    assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 120


def test_method_choice() -> None:
    assert resolve_method(None) == "cam" and resolve_method("lite") == "cam"
    assert resolve_method("hf:openai/clip-vit-base-patch32") == "window"
    assert resolve_method("lite", "window") == "window"
    with pytest.raises(InputError, match="cam method needs the lite model"):
        resolve_method("open_clip:ViT-B-32/openai", "cam")
    with pytest.raises(InputError, match="unknown explain method"):
        resolve_method("lite", "gradcam")


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    with pytest.raises(ImageDecodeError, match=r"notes\.jpg"):
        explain(bad, "a cat")
    with pytest.raises(ImageDecodeError, match="no such file"):
        explain(tmp_path / "missing.png", "a cat")


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_is_refused(text: str, photos: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="text is empty"):
        explain(photos["cat"], text)


def test_the_package_is_callable_as_the_function() -> None:
    import polymodal.explain.cam  # importing a submodule sets the package as polymodal.explain

    assert callable(polymodal.explain)
    with pytest.raises(InputError, match="text is empty"):
        polymodal.explain("whatever.png", "")
