"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF) through rawpy, LibRaw's Python binding.

A RAW file is recognised by its content, not its name: the indexer hands the decoder bytes, and most RAW
formats are TIFF files that Pillow would happily open as their small first-IFD thumbnail or as a grey
sensor mosaic. So TIFF data is walked for what only sensor data carries (a DNG version, a colour filter
array, a camera maker's raw compression) and the other formats by their magic numbers.

Decoding prefers the preview JPEG the camera embedded (``extract_thumb()``): it is the camera's own
rendering and costs one JPEG decode. When it is too small for what was asked, LibRaw demosaics the sensor
data, at half size (one pixel per 2 x 2 Bayer quad, ~4x faster) when that is still large enough.
"""

from __future__ import annotations

import io
import os
import struct
from datetime import UTC
from typing import Any

from polymodal.errors import ImageDecodeError
from polymodal.media.metadata import PhotoMetadata

#: RAW file extensions; what decides is the content (``is_raw``), these only pick files during a scan
RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf"})

_NON_TIFF_MAGIC = (
    (0, b"FUJIFILMCCD-RAW"),  # RAF
    (0, b"IIRO"), (0, b"IIRS"), (0, b"MMOR"),  # ORF: a TIFF with Olympus' own magic
    (0, b"IIU\0"),  # RW2 (Panasonic), same idea
    (4, b"ftypcrx "),  # CR3: an ISO media file of brand "crx "
)
_DNG_VERSION, _SUB_IFDS, _COMPRESSION, _PHOTOMETRIC = 50706, 330, 259, 262
_CFA, _LINEAR_RAW = 32803, 34892  # PhotometricInterpretation of sensor data (TIFF/EP, DNG)
#: compressions only raw sensor data uses: Sony ARW, Nikon packed/NEF, Kodak
_RAW_COMPRESSIONS = frozenset({32767, 32769, 32770, 34713, 65000})
_MAX_IFDS, _MAX_TAGS = 32, 512  # a hostile file's directories are not walked further than any camera's

# LibRaw's ``flip`` (dcraw's: 3 = 180 degrees, 5 = 90 counter-clockwise, 6 = 90 clockwise) as EXIF orientation
_FLIP_TO_ORIENTATION = {3: 3, 5: 8, 6: 6}


def is_raw(data: bytes) -> bool:
    """Whether ``data`` (a whole file, or at least its TIFF directories) is camera RAW rather than a picture."""
    if any(data[at: at + len(magic)] == magic for at, magic in _NON_TIFF_MAGIC):
        return True
    if data[:4] == b"II*\0" and data[8:10] == b"CR":
        return True  # CR2
    if data[:4] not in (b"II*\0", b"MM\0*"):
        return False
    try:
        return _tiff_has_sensor_data(data)
    except (struct.error, IndexError, ValueError):
        return False


def is_raw_file(path: str) -> bool:
    """``is_raw`` for a file on disk: its name when it has a RAW extension, else its content (TIFFs only)."""
    if os.path.splitext(path)[1].lower() in RAW_EXTENSIONS:
        return True
    with open(path, "rb") as fh:
        head = fh.read(16)
        if head[:4] in (b"II*\0", b"MM\0*"):
            return is_raw(head + fh.read())  # TIFF directories may sit anywhere, the end included
    return is_raw(head)


def _tiff_has_sensor_data(data: bytes) -> bool:
    end = "<" if data[:2] == b"II" else ">"
    pending: list[int] = [struct.unpack(end + "I", data[4:8])[0]]
    seen: set[int] = set()
    while pending and len(seen) < _MAX_IFDS:
        offset = pending.pop()
        if offset in seen or not 8 <= offset < len(data) - 2:
            continue
        seen.add(offset)
        (count,) = struct.unpack(end + "H", data[offset: offset + 2])
        for n in range(min(count, _MAX_TAGS)):
            tag, kind, num, value = struct.unpack(end + "HHI4s", data[offset + 2 + 12 * n: offset + 14 + 12 * n])
            short = struct.unpack(end + "H", value[:2])[0] if kind == 3 else struct.unpack(end + "I", value)[0]
            if tag == _DNG_VERSION:
                return True
            if (tag == _PHOTOMETRIC and short in (_CFA, _LINEAR_RAW)) or (
                    tag == _COMPRESSION and short in _RAW_COMPRESSIONS):
                return True
            if tag == _SUB_IFDS and kind in (4, 13):  # LONG or IFD: one offset in place, several behind a pointer
                first, num = struct.unpack(end + "I", value)[0], min(num, 8)
                pending += [first] if num == 1 else struct.unpack(f"{end}{num}I", data[first: first + 4 * num])
        nxt = offset + 2 + 12 * count
        pending.append(struct.unpack(end + "I", data[nxt: nxt + 4])[0])
    return False


def _open(item: bytes | str) -> Any:
    import rawpy

    return rawpy.imread(io.BytesIO(item) if isinstance(item, bytes) else item)


def load_raw(item: bytes | str, source: str, min_side: int | None) -> Any:
    """Decode a RAW file (its bytes or path) into a PIL image, orientation applied.

    ``min_side`` as for ``load_image``: the embedded preview is used when both its sides reach it (when
    None, only a preview as large as the sensor image will do); else a demosaic, halved when that still
    reaches it. Raises ImageDecodeError naming ``source`` for anything LibRaw cannot read.
    """
    import rawpy
    from PIL import Image

    try:
        with _open(item) as raw:
            sizes = raw.sizes
            limit = Image.MAX_IMAGE_PIXELS
            if limit and sizes.raw_width * sizes.raw_height > limit:
                raise ImageDecodeError(source, f"too many pixels (decompression bomb guard): {sizes.raw_width} x "
                                       f"{sizes.raw_height} sensor pixels, over the limit of {limit}")
            need = min_side or min(sizes.width, sizes.height)
            image = _preview(raw, need, sizes.flip)
            if image is not None:
                return image
            half = bool(min_side) and min(sizes.width, sizes.height) // 2 >= need
            rgb = raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8)  # applies the flip itself
            return Image.fromarray(rgb)
    except ImageDecodeError:
        raise
    except (rawpy.LibRawError, rawpy.NotSupportedError) as exc:
        why = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ImageDecodeError(source, f"not a camera RAW file LibRaw can decode ({type(exc).__name__}: {why})") \
            from None
    except OSError as exc:
        raise ImageDecodeError(source, f"cannot read it ({exc})") from None


def _preview(raw: Any, need: int, flip: int) -> Any:
    """The embedded preview, orientation applied, when both its sides are at least ``need``; else None."""
    import rawpy
    from PIL import Image

    from polymodal.media.images import load_image

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, rawpy.NotSupportedError):
        return None  # no preview, or one LibRaw cannot hand over: the sensor data still decodes
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            with Image.open(io.BytesIO(thumb.data)) as head:
                if min(head.size) < need:
                    return None
                exif_orientation = head.getexif().get(0x0112)
        except Exception:  # noqa: BLE001 - a damaged preview: demosaic instead
            return None
        try:
            image = load_image(thumb.data, min_side=need)
        except ImageDecodeError:
            return None
        if exif_orientation not in (None, 1):
            return image  # the preview carries its own orientation, which load_image applied
    elif thumb.format == rawpy.ThumbFormat.BITMAP:
        if min(thumb.data.shape[:2]) < need:
            return None
        image = Image.fromarray(thumb.data).convert("RGB")
    else:
        return None
    turn = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}.get(flip)
    return image.transpose(turn) if turn is not None else image


def raw_header(data: bytes) -> tuple[PhotoMetadata, tuple[int, int] | None]:
    """EXIF date, camera and position of a RAW file, and its displayed size, without demosaicing.

    TIFF-based formats carry EXIF in their own directories (Pillow reads those); the others (CR3, RAF) in
    the preview JPEG; LibRaw's own timestamp fills in the date where neither has it.
    """
    from dataclasses import replace

    from PIL import Image

    from polymodal.media.metadata import exif_metadata

    meta = PhotoMetadata()
    if data[:4] in (b"II*\0", b"MM\0*"):
        # The TIFF directories read as EXIF, not through Image.open: Pillow has no mode for sensor data
        exif = Image.Exif()
        try:
            exif.load(data)
            meta = exif_metadata(exif)
        except Exception:  # noqa: BLE001 - damaged directories: the preview and LibRaw below
            pass
    try:
        with _open(data) as raw:
            sizes, timestamp = raw.sizes, raw.other.timestamp
            preview = PhotoMetadata()
            if meta.taken is None or meta.camera is None:
                preview = _preview_metadata(raw)
    except Exception:  # noqa: BLE001 - it decoded a moment ago; metadata is optional
        return meta, None
    if timestamp is not None and getattr(timestamp, "year", 0) > 1970:
        # LibRaw turns the camera's local clock into a timestamp and rawpy back: the same wall-clock time,
        # kept as if UTC as parse_exif_datetime does for photos without an offset
        preview = replace(preview, taken=preview.taken or timestamp.replace(tzinfo=UTC))
    meta = PhotoMetadata(
        taken=meta.taken or preview.taken, camera=meta.camera or preview.camera,
        latitude=meta.latitude if meta.latitude is not None else preview.latitude,
        longitude=meta.longitude if meta.longitude is not None else preview.longitude,
        orientation=_FLIP_TO_ORIENTATION.get(sizes.flip) if sizes.flip else meta.orientation,
    )
    w, h = sizes.width, sizes.height
    return meta, ((h, w) if sizes.flip & 4 else (w, h))


def _preview_metadata(raw: Any) -> PhotoMetadata:
    import rawpy
    from PIL import Image

    from polymodal.media.metadata import read_metadata

    try:
        thumb = raw.extract_thumb()
        if thumb.format != rawpy.ThumbFormat.JPEG:
            return PhotoMetadata()
        with Image.open(io.BytesIO(thumb.data)) as img:
            return read_metadata(img)
    except Exception:  # noqa: BLE001 - no preview or no EXIF in it
        return PhotoMetadata()
