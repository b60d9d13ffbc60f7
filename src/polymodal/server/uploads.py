"""Uploaded images, bounded before anything decodes them: bytes first, then pixels from the header alone."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from typing import Any

from polymodal.errors import ImageDecodeError, InputError, UploadTooLargeError

_DATA_URL = re.compile(r"^data:(image/[\w.+-]+)?(;[\w=.+-]+)*;base64,(.*)$", re.S | re.I)
#: the first bytes of the formats Pillow reads here; anything else given as base64 is taken for text
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")


async def read_upload(upload: Any, max_bytes: int, what: str = "the upload") -> bytes:
    """Read an UploadFile, refusing it as soon as it passes ``max_bytes`` (never the whole body in memory)."""
    chunks, total = [], 0
    while True:
        chunk = await upload.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise UploadTooLargeError(f"{what} is larger than the server's limit of {max_bytes} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise ImageDecodeError(what, "no data (0 bytes)")
    return data


def check_image(data: bytes, max_bytes: int, max_pixels: int, source: str = "uploaded image") -> bytes:
    """Refuse bytes that are too many, not an image, or an image of too many pixels, reading only the header."""
    from PIL import Image, UnidentifiedImageError

    from polymodal.media.images import register_plugins
    from polymodal.media.raw import is_raw, raw_header

    if len(data) > max_bytes:
        raise UploadTooLargeError(f"{source} is larger than the server's limit of {max_bytes} bytes")
    register_plugins()  # a phone's HEIC query photo is an image like any other
    try:
        if is_raw(data):  # a camera RAW: its sensor size, which Pillow would misread as its thumbnail's
            size = raw_header(data)[1]
            if size is None:
                raise ValueError("no size in the RAW header")
            width, height = size
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower, below
                with Image.open(io.BytesIO(data)) as img:
                    width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(source, f"not a readable image ({type(exc).__name__})") from None
    if width * height > max_pixels:
        raise UploadTooLargeError(f"{source} is {width}x{height} pixels, over the server's limit of "
                                  f"{max_pixels} pixels")
    return data


def decode_base64_image(value: str, max_bytes: int, *, require: bool = True) -> bytes | None:
    """Bytes of an image given as a data URL or plain base64; None when ``value`` is not one and not ``require``."""
    m = _DATA_URL.match(value)
    body = m.group(3) if m else value
    if not m and (len(value) < 16 or (not require and len(value) > 4 * max_bytes)):
        if require:
            raise InputError("image is neither a data URL nor base64")
        return None
    if len(body) > (max_bytes * 4) // 3 + 4:
        raise UploadTooLargeError(f"image is larger than the server's limit of {max_bytes} bytes")
    try:
        data = base64.b64decode(re.sub(r"\s+", "", body), validate=True)
    except (binascii.Error, ValueError):
        if m or require:
            raise InputError("image is a data URL or base64 that does not decode") from None
        return None
    if not m and not data.startswith(_MAGIC):
        if require:
            raise InputError("base64 input does not decode to an image (JPEG, PNG, GIF, WebP, BMP or TIFF)")
        return None
    return data
