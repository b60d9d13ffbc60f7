"""Small previews stored in the library, so listing results never re-reads (or needs) the originals."""

from __future__ import annotations

import io
from typing import Any

#: longest side of a stored thumbnail, in pixels
THUMBNAIL_SIZE = 256
#: WebP quality: at 256 px, 80 keeps photos clean in ~5-15 kB
THUMBNAIL_QUALITY = 80


def make_thumbnail(image: Any, size: int = THUMBNAIL_SIZE, quality: int = THUMBNAIL_QUALITY) -> bytes:
    """WebP bytes of ``image`` (an RGB PIL image, orientation already applied) fitted into size x size."""
    from PIL import Image

    thumb = image.copy()
    # draft() would be faster for JPEGs, but the image is already decoded for embedding, so reuse it.
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    thumb.save(buf, format="WEBP", quality=quality, method=4)
    return buf.getvalue()
