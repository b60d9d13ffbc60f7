"""A region of a picture: a box ``[x0, y0, x1, y1]`` in pixels of the picture as displayed (EXIF orientation
applied), the convention of every box polymodal reads or writes (``explain``, OCR lines), x1 and y1 exclusive."""

from __future__ import annotations

from typing import Any

from polymodal.errors import InputError

Box = tuple[int, int, int, int]


def parse_box(text: str | Any) -> Box:
    """``"x0,y0,x1,y1"`` (or four numbers) -> a box; a clear error naming the box otherwise."""
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    try:
        if len(parts) != 4:
            raise ValueError
        values = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise InputError(f"box {text!r} is not four numbers x0,y0,x1,y1 (pixels of the picture)") from None
    x0, y0, x1, y1 = (round(v) for v in values)
    return x0, y0, x1, y1


def crop(image: Any, box: Box) -> Any:
    """The part of ``image`` (path, bytes or PIL image, decoded with its orientation applied) inside ``box``.

    Raises InputError naming the box when it has no area or reaches outside the picture."""
    from polymodal.media.images import describe_input, load_image

    picture = load_image(image)
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"box {list(box)} has no area: x1 must exceed x0 and y1 must exceed y0")
    if x0 < 0 or y0 < 0 or x1 > picture.width or y1 > picture.height:
        raise InputError(f"box {list(box)} reaches outside {describe_input(image)}, which is "
                         f"{picture.width} x {picture.height} pixels as displayed")
    return picture.crop(box)
