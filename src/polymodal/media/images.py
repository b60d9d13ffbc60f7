"""Safe image decoding: paths, bytes or PIL images in; RGB PIL images with EXIF orientation applied out.

Pillow's decompression-bomb limit stays on (``Image.MAX_IMAGE_PIXELS``), and truncated files are errors:
``ImageFile.LOAD_TRUNCATED_IMAGES`` is never switched on, since a half-decoded photo would be embedded as
grey and silently match nothing.

Decoding work is bounded before it starts, so a hostile file fails fast instead of holding a thread: the pixel
count is checked on the header, a JPEG with more than ``MAX_JPEG_SCANS`` scans (a progressive "scan bomb":
a small file whose every scan walks the whole image again) is refused, and formats that Pillow hands to an
outside program (EPS goes to Ghostscript) are never decoded. See docs/reliability.md for the measurements.

Besides what Pillow reads itself (AVIF included, with Pillow's own libavif), HEIC/HEIF photos decode through
pillow-heif's opener, registered on first use, and camera RAW through rawpy (media/raw.py).
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

from polymodal.errors import ImageDecodeError, InputError

#: scans a JPEG may hold: libjpeg's progressive scripts use 10 (colour) or 6 (grey), mozjpeg a few more;
#: scan bombs use thousands, each one re-walking every block (libjpeg-turbo's djpeg -maxscans guards the same)
MAX_JPEG_SCANS = 100
#: formats whose decoding Pillow delegates to an external program
_EXTERNAL_FORMATS = frozenset({"EPS", "WMF", "EMF"})
_plugins_registered = False


def register_plugins() -> None:
    """Teach Pillow HEIC/HEIF (pillow-heif), once per process; imported here, not at start-up (~30 ms)."""
    global _plugins_registered
    if _plugins_registered:
        return
    from pillow_heif import register_heif_opener

    # Auxiliary, depth and thumbnail images are never used here: not even listed, so never decoded.
    register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    _plugins_registered = True


def describe_input(item: Any) -> str:
    """A short human name for an image input, for error messages and CLI output."""
    if isinstance(item, (str, os.PathLike)):
        return os.fsdecode(item)
    if isinstance(item, (bytes, bytearray)):
        return f"<{len(item)} bytes>"
    return f"<{type(item).__name__}>"


def load_image(item: Any, min_side: int | None = None) -> Any:
    """Decode ``item`` (path, bytes or PIL image) into an RGB PIL image, orientation applied.

    ``min_side``: a JPEG larger than needed is decoded with DCT scaling (1/2, 1/4 or 1/8) to the smallest
    size whose both sides are still at least ``min_side``; a camera RAW file gives its embedded preview
    when that is large enough, else a demosaic (half size when enough); other formats decode at full size.

    Raises ImageDecodeError naming the input for anything missing, unreadable, not an image, truncated
    or over Pillow's pixel limit.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, (str, os.PathLike, bytes, bytearray)):
        source = describe_input(item)
        if isinstance(item, (bytes, bytearray)):
            if not item:
                raise ImageDecodeError(source, "no data (0 bytes)")
            fp: Any = io.BytesIO(bytes(item))
        else:
            path = os.fspath(item)
            if not os.path.exists(path):
                raise ImageDecodeError(source, "no such file")
            if os.path.isdir(path):
                raise ImageDecodeError(source, "it is a directory")
            if os.path.getsize(path) == 0:
                raise ImageDecodeError(source, "the file is empty (0 bytes)")
            fp = path
        from polymodal.media.raw import is_raw, is_raw_file, load_raw

        data_or_path = bytes(item) if isinstance(item, (bytes, bytearray)) else fp
        try:
            if is_raw(data_or_path) if isinstance(data_or_path, bytes) else is_raw_file(data_or_path):
                return load_raw(data_or_path, source, min_side)  # oriented and RGB already
        except PermissionError:
            raise ImageDecodeError(source, "permission denied") from None
        except OSError as exc:
            raise ImageDecodeError(source, f"cannot read it ({exc})") from None
        register_plugins()
        try:
            with warnings.catch_warnings():
                # Pillow warns before its hard limit; promote it so a bomb is refused, not half-decoded.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fp)
                _check_bounds(img, item)
                if min_side and img.format == "JPEG":
                    img.draft(img.mode if img.mode in ("RGB", "L") else None, (min_side, min_side))
                img.load()
        except ImageDecodeError:
            raise
        except UnidentifiedImageError:
            raise ImageDecodeError(source, "not a recognised image format") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageDecodeError(source, f"too many pixels (decompression bomb guard): {exc}") from None
        except PermissionError:
            raise ImageDecodeError(source, "permission denied") from None
        except OSError as exc:
            raise ImageDecodeError(source, f"corrupt or truncated image data ({exc})") from None
        except (ValueError, SyntaxError, EOFError) as exc:
            raise ImageDecodeError(source, f"invalid image data ({exc})") from None
    else:
        raise InputError(f"cannot use {describe_input(item)} as an image: pass a file path, bytes or a PIL image")

    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block should not lose an otherwise good photo
        pass
    if img.mode != "RGB":
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            # Composite on white: transparent pixels hold arbitrary colours that would otherwise show.
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba).convert("RGB")
        else:
            img = img.convert("RGB")
    return img


def _check_bounds(img: Any, item: Any) -> None:
    """Refuse, from the header alone, what would take unbounded time or memory to decode."""
    from PIL import Image

    source = describe_input(item)
    if img.format in _EXTERNAL_FORMATS:
        raise ImageDecodeError(source, f"{img.format} images are not decoded (Pillow would run an outside program)")
    # Checked here as well as by Pillow: Pillow's own check only warns below twice the limit, and the
    # warnings filter that turns it into an error is process-wide, not safe across reader threads.
    limit = Image.MAX_IMAGE_PIXELS
    w, h = img.size
    if limit and w * h > limit:
        raise ImageDecodeError(source, f"too many pixels (decompression bomb guard): {w} x {h} = {w * h} pixels, "
                               f"over the limit of {limit}")
    if w <= 0 or h <= 0:
        raise ImageDecodeError(source, f"invalid image size {w} x {h}")
    if img.format in ("JPEG", "MPO"):
        if isinstance(item, (bytes, bytearray)):
            data = bytes(item)
        else:
            with open(os.fspath(item), "rb") as fh:
                data = fh.read()
        # A start-of-scan marker cannot occur inside entropy-coded data (0xFF there is always stuffed), so
        # counting it is exact but for scans of an embedded EXIF thumbnail, which only raise the count a little.
        scans = data.count(b"\xff\xda")
        if scans > MAX_JPEG_SCANS:
            raise ImageDecodeError(source, f"too many JPEG scans ({scans}, limit {MAX_JPEG_SCANS}): "
                                   "a progressive scan bomb")
