"""What a photo says about itself: EXIF date taken, camera, GPS position and orientation.

Reading metadata never fails a file: a photo with a broken EXIF block is still a photo, so every field
is optional and a damaged block yields ``PhotoMetadata()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# EXIF tag numbers (EXIF 2.32, CIPA DC-008)
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED, _OFFSET_ORIGINAL = 0x9003, 0x9004, 0x9011
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4


@dataclass(frozen=True)
class PhotoMetadata:
    taken: datetime | None = None  # when the photo was taken (UTC when the offset is known, else as local time)
    camera: str | None = None  # "Make Model", de-duplicated ("Canon Canon EOS 5D" -> "Canon EOS 5D")
    latitude: float | None = None  # decimal degrees, north positive
    longitude: float | None = None  # decimal degrees, east positive
    orientation: int | None = None  # EXIF orientation 1..8 as stored; decoding has already applied it


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 \t\r\n")
    return value or None


def parse_exif_datetime(value: Any, offset: Any = None) -> datetime | None:
    """``"2021:07:14 18:03:22"`` (+ optional ``"+02:00"``) -> an aware UTC datetime; None when unparseable.

    Cameras without an offset tag record local time with no zone; it is kept as if UTC, which is what
    date filters compare against and is at worst off by the photographer's time zone.
    """
    text = _text(value)
    if not text or text.startswith("0000"):
        return None
    try:
        naive = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    off = _text(offset)
    if off:
        try:
            return datetime.strptime(f"{text[:19]} {off}", "%Y:%m:%d %H:%M:%S %z").astimezone(UTC)
        except ValueError:
            pass
    return naive.replace(tzinfo=UTC)


def _degrees(value: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(x) for x in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60.0 + s / 3600.0
    if _text(ref) in ("S", "W"):
        deg = -deg
    return deg


def _camera(make: Any, model: Any) -> str | None:
    make_s, model_s = _text(make), _text(model)
    if make_s and model_s and model_s.lower().startswith(make_s.lower()):
        return model_s
    return " ".join(x for x in (make_s, model_s) if x) or None


def read_metadata(image: Any) -> PhotoMetadata:
    """Metadata of an opened (not necessarily decoded) PIL image."""
    try:
        # pillow-heif turns the HEIF's rotation into pixels on decode and resets the EXIF tag to 1, keeping
        # what the file said in ``original_orientation``
        return exif_metadata(image.getexif(), image.info.get("original_orientation"))
    except Exception:  # noqa: BLE001 - damaged EXIF must not lose the photo; the fields just stay empty
        return PhotoMetadata()


def exif_metadata(exif: Any, orientation: int | None = None) -> PhotoMetadata:
    """Metadata from a PIL ``Image.Exif`` (``orientation``, when given, stands for the EXIF tag)."""
    try:
        if not exif:
            return PhotoMetadata()
        sub = exif.get_ifd(_EXIF_IFD)
        gps = exif.get_ifd(_GPS_IFD)
        taken = parse_exif_datetime(sub.get(_DATETIME_ORIGINAL), sub.get(_OFFSET_ORIGINAL)) or parse_exif_datetime(
            sub.get(_DATETIME_DIGITIZED)
        ) or parse_exif_datetime(exif.get(_DATETIME))
        lat = lon = None
        if gps:
            lat = _degrees(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF))
            lon = _degrees(gps.get(_GPS_LON), gps.get(_GPS_LON_REF))
            if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                lat = lon = None
        orientation = orientation or exif.get(_ORIENTATION)
        return PhotoMetadata(
            taken=taken,
            camera=_camera(exif.get(_MAKE), exif.get(_MODEL)),
            latitude=lat,
            longitude=lon,
            orientation=int(orientation) if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        )
    except Exception:  # noqa: BLE001 - damaged EXIF must not lose the photo; the fields just stay empty
        return PhotoMetadata()


def read_header(data: bytes) -> tuple[PhotoMetadata, tuple[int, int] | None]:
    """Metadata and the displayed (orientation-applied) size of a whole image file, read without decoding
    pixels; ``(PhotoMetadata(), None)`` when the header cannot be read."""
    import io

    from PIL import Image

    from polymodal.media.images import register_plugins
    from polymodal.media.raw import is_raw, raw_header

    if is_raw(data):
        return raw_header(data)
    register_plugins()
    try:
        with Image.open(io.BytesIO(data)) as img:
            meta = read_metadata(img)
            w, h = img.size
            turned = img.format == "HEIF"  # pillow-heif reports the size after its rotation
    except Exception:  # noqa: BLE001 - metadata is optional
        return PhotoMetadata(), None
    # Orientations 5-8 turn the picture a quarter: the stored width is the displayed height.
    return meta, ((h, w) if meta.orientation in (5, 6, 7, 8) and not turned else (w, h))
