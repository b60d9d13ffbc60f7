"""``read_text``: the text in pictures, one ``OcrResult`` per picture.

Pictures are decoded by ``media.images.load_image`` as everywhere in polymodal: EXIF orientation applied (so
boxes are in pixels of the picture as it is displayed), Pillow's pixel limit and the decoding guards on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from polymodal.errors import InputError, OcrError, PolymodalError
from polymodal.media.images import describe_input, load_image
from polymodal.ocr.base import OcrEngine, load_engine
from polymodal.ocr.layout import reading_order
from polymodal.ocr.types import OcrResult

#: lines read per picture: a page of small print has ~100, a photo a handful; past this a picture is
#: wallpaper, a crowd of price tags or confetti, and reading every speck would take minutes
MAX_LINES = 500


def read_text(images: Iterable[Any], engine: OcrEngine | str | None = None, max_lines: int = MAX_LINES,
              progress: Callable[[int, int], None] | None = None) -> list[OcrResult]:
    """The lines of text in each picture (paths, bytes or PIL images), in reading order.

    ``engine``: an ``OcrEngine``, or a spec for ``load_engine`` (default ``rapid``, offline Chinese/English).
    ``max_lines``: at most this many lines per picture, the largest kept; ``OcrResult.capped`` says when a
    picture held more. Raises ImageDecodeError naming a picture that cannot be read, and OcrError naming one
    the engine failed on.
    """
    if max_lines < 1:
        raise InputError(f"max_lines must be at least 1, got {max_lines}")
    items = list(images)
    ocr = engine if isinstance(engine, OcrEngine) else load_engine(engine)
    results = []
    for done, item in enumerate(items, 1):
        results.append(_read_one(ocr, item, max_lines))
        if progress is not None:
            progress(done, len(items))
    return results


def _read_one(engine: OcrEngine, item: Any, max_lines: int) -> OcrResult:
    source = describe_input(item)
    image = load_image(item)
    try:
        reading = engine.read(image, limit=max_lines)
    except PolymodalError:
        raise
    except Exception as exc:
        raise OcrError(f"OCR engine {engine.name} failed on {source}: {type(exc).__name__}: {exc}") from exc
    lines, capped = reading.lines, reading.capped
    if len(lines) > max_lines:  # an engine that read past the limit it was given
        lines = sorted(lines, key=lambda ln: (ln.box[2] - ln.box[0]) * (ln.box[3] - ln.box[1]), reverse=True)
        lines, capped = lines[:max_lines], True
    return OcrResult(input=source, width=image.width, height=image.height, lines=reading_order(lines),
                     capped=capped)
