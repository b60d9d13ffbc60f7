"""Camera RAW, HEIC and AVIF files made in the tests from real photos, with EXIF as a phone or camera writes it.

A DNG is written by hand (a TIFF with the DNG tags, Adobe DNG Specification 1.4): the photo is mosaicked
into an RGGB Bayer pattern at 16 bits, so LibRaw has real sensor-like data to demosaic, and an optional JPEG
preview sits in IFD0 the way cameras store theirs (the raw data then lives in a SubIFD). No library here
writes DNG (tifffile writes the tags but not a file LibRaw takes without more care), and 150 lines of
struct packing are easier to check against the specification than a second dependency.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _SRATIONAL = 1, 2, 3, 4, 5, 10
_SIZES = {_BYTE: 1, _ASCII: 1, _SHORT: 2, _LONG: 4, _RATIONAL: 8, _SRATIONAL: 8}
_FORMATS = {_BYTE: "B", _SHORT: "H", _LONG: "I"}


@dataclass
class _Ifd:
    tags: dict[int, tuple[int, Any]]  # tag -> (type, values); an _Ifd value is written as a pointer to it
    offset: int = 0


def _pack_values(kind: int, values: Any) -> bytes:
    if kind == _ASCII:
        return values.encode() + b"\0"
    if kind in (_RATIONAL, _SRATIONAL):
        fmt = "<II" if kind == _RATIONAL else "<ii"
        return b"".join(struct.pack(fmt, *v) for v in values)
    return struct.pack("<" + _FORMATS[kind] * len(values), *values)


def _count(kind: int, values: Any) -> int:
    return len(values) + 1 if kind == _ASCII else len(values)


class _Writer:
    """Appends data and IFDs to one little-endian TIFF; children are written before the IFD pointing at them."""

    def __init__(self) -> None:
        self.buf = bytearray(b"II*\0\0\0\0\0")

    def blob(self, data: bytes) -> int:
        if len(self.buf) % 2:
            self.buf += b"\0"
        offset = len(self.buf)
        self.buf += data
        return offset

    def ifd(self, ifd: _Ifd) -> int:
        tags = {}
        for tag, (kind, values) in ifd.tags.items():
            if isinstance(values, _Ifd):
                tags[tag] = (_LONG, [self.ifd(values)])
            else:
                tags[tag] = (kind, values)
        if len(self.buf) % 2:
            self.buf += b"\0"
        start = len(self.buf)
        n = len(tags)
        extra_at = start + 2 + 12 * n + 4
        entries, extra = bytearray(), bytearray()
        for tag in sorted(tags):
            kind, values = tags[tag]
            data = _pack_values(kind, values)
            if len(data) <= 4:
                field = data.ljust(4, b"\0")
            else:
                field = struct.pack("<I", extra_at + len(extra))
                extra += data + (b"\0" if len(data) % 2 else b"")
            entries += struct.pack("<HHI", tag, kind, _count(kind, values)) + field
        self.buf += struct.pack("<H", n) + entries + b"\0\0\0\0" + extra
        ifd.offset = start
        return start


def _rational(x: float) -> tuple[int, int]:
    return (round(x * 10000), 10000)


def _gps(lat: float, lon: float) -> _Ifd:
    def dms(v: float) -> list[tuple[int, int]]:
        v = abs(v)
        d, m = int(v), int((v % 1) * 60)
        s = (v - d - m / 60) * 3600
        return [(d, 1), (m, 1), _rational(s)]

    return _Ifd({0: (_BYTE, [2, 3, 0, 0]), 1: (_ASCII, "N" if lat >= 0 else "S"), 2: (_RATIONAL, dms(lat)),
                 3: (_ASCII, "E" if lon >= 0 else "W"), 4: (_RATIONAL, dms(lon))})


def make_dng(photo: Any, *, preview: Any = None, orientation: int = 1, taken: datetime | None = None,
             gps: tuple[float, float] | None = None, make: str = "Polymodal", model: str = "Test DNG",
             truncated: bool = False) -> bytes:
    """A DNG whose raw data is ``photo`` (a PIL image) behind an RGGB colour filter, optionally with a JPEG
    ``preview`` (a PIL image) in IFD0 as cameras store it. ``truncated``: the sensor data is missing, its
    offset past the end of the file, as in a copy cut off midway."""
    # A sensor counts light linearly: undo sRGB's gamma (approximately, 2.2), over a black level, 14 bits
    black, white = 256, 16383
    rgb = (np.asarray(photo.convert("RGB"), dtype=np.float64) / 255.0) ** 2.2 * (white - black) + black
    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    rgb = rgb[:h, :w]
    cfa = np.empty((h, w), dtype="<u2")
    cfa[0::2, 0::2] = rgb[0::2, 0::2, 0]  # R
    cfa[0::2, 1::2] = rgb[0::2, 1::2, 1]  # G
    cfa[1::2, 0::2] = rgb[1::2, 0::2, 1]  # G
    cfa[1::2, 1::2] = rgb[1::2, 1::2, 2]  # B

    out = _Writer()
    raw_at = (1 << 24) if truncated else out.blob(cfa.tobytes())
    raw_tags: dict[int, tuple[int, Any]] = {
        254: (_LONG, [0]), 256: (_LONG, [w]), 257: (_LONG, [h]), 258: (_SHORT, [16]), 259: (_SHORT, [1]),
        262: (_SHORT, [32803]), 273: (_LONG, [raw_at]), 277: (_SHORT, [1]), 278: (_LONG, [h]),
        279: (_LONG, [cfa.nbytes]), 284: (_SHORT, [1]),
        33421: (_SHORT, [2, 2]), 33422: (_BYTE, [0, 1, 1, 2]),  # CFARepeatPatternDim, CFAPattern RGGB
        50714: (_LONG, [black]), 50717: (_LONG, [white]),  # BlackLevel, WhiteLevel
    }
    camera_tags: dict[int, tuple[int, Any]] = {
        271: (_ASCII, make), 272: (_ASCII, model), 274: (_SHORT, [orientation]),
        50706: (_BYTE, [1, 4, 0, 0]), 50707: (_BYTE, [1, 1, 0, 0]),  # DNGVersion, DNGBackwardVersion
        50708: (_ASCII, f"{make} {model}"),  # UniqueCameraModel
        # ColorMatrix1 (XYZ -> camera): sRGB's own matrix, so the camera's colours are sRGB's
        50721: (_SRATIONAL, [_rational(x) for x in (3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415,
                                                      0.0557, -0.2040, 1.0570)]),
        50728: (_RATIONAL, [(1, 1), (1, 1), (1, 1)]),  # AsShotNeutral: white is white
        50778: (_SHORT, [21]),  # CalibrationIlluminant1: D65
    }
    if taken is not None:
        camera_tags[34665] = (_LONG, _Ifd({36867: (_ASCII, taken.strftime("%Y:%m:%d %H:%M:%S"))}))
        camera_tags[306] = (_ASCII, taken.strftime("%Y:%m:%d %H:%M:%S"))
    if gps is not None:
        camera_tags[34853] = (_LONG, _gps(*gps))
    if preview is None:
        ifd0 = _Ifd({**raw_tags, **camera_tags})
    else:
        jpeg = io.BytesIO()
        preview.convert("RGB").save(jpeg, "JPEG", quality=90)
        jpeg_at = out.blob(jpeg.getvalue())
        pw, ph = preview.size
        ifd0 = _Ifd({
            254: (_LONG, [1]), 256: (_LONG, [pw]), 257: (_LONG, [ph]), 258: (_SHORT, [8, 8, 8]),
            259: (_SHORT, [7]), 262: (_SHORT, [6]), 273: (_LONG, [jpeg_at]), 277: (_SHORT, [3]),
            278: (_LONG, [ph]), 279: (_LONG, [len(jpeg.getvalue())]), 284: (_SHORT, [1]),
            330: (_LONG, _Ifd(raw_tags)),  # SubIFDs: the raw data
            **camera_tags,
        })
    first = out.ifd(ifd0)
    out.buf[4:8] = struct.pack("<I", first)
    return bytes(out.buf)


def exif_block(*, orientation: int = 1, taken: str | None = None, offset: str | None = None,
               gps: tuple[float, float] | None = None, make: str | None = None, model: str | None = None) -> bytes:
    """An EXIF block (TIFF bytes, as Pillow's ``exif=`` takes it): orientation, date taken, GPS, camera."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
        if offset:
            exif.get_ifd(0x8769)[0x9011] = offset
    if gps:
        lat, lon = gps
        g = exif.get_ifd(0x8825)
        g[1], g[3] = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        g[2] = (float(int(abs(lat))), float(int(abs(lat) % 1 * 60)), round(abs(lat) * 3600 % 60, 2))
        g[4] = (float(int(abs(lon))), float(int(abs(lon) % 1 * 60)), round(abs(lon) * 3600 % 60, 2))
    # Bytes, not the Exif object: pillow-heif turns the orientation of bytes into the HEIF's rotation (irot)
    # as phones write it, while an Exif object is copied as it is and the picture would show unturned
    return exif.tobytes()


def save_photo(photo: Any, fmt: str, exif: bytes) -> bytes:
    """``photo`` encoded as HEIF (pillow-heif, x265) or AVIF (Pillow's own libavif), or any Pillow format."""
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    out = io.BytesIO()
    photo.convert("RGB").save(out, fmt, exif=exif, quality=85)
    return out.getvalue()
