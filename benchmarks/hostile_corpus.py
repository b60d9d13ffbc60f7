"""A corpus of hostile media, and a run that indexes it and checks that polymodal holds.

Built here, byte by byte, so it needs nothing downloaded: pixel bombs over twice Pillow's limit, GIF extent
and zero-size tricks, a progressive-JPEG scan bomb, truncated, zero-byte and garbage files, an EPS named .jpg,
broken video containers, playlists that point at a secret file and at an HTTP address, symlink loops,
symlinks out of the root, a FIFO, a sparse "image" of 4 GiB and names that are not UTF-8.

``run`` indexes the corpus with a real ``polymodal index`` while it watches the secret folder with inotify
(any open of anything in it is recorded) and listens on the HTTP address the playlists name. It then checks
that every hostile file is a recorded failure with a reason (or, where noted, never read at all), that the
good controls are indexed, that no file took longer than the per-file limit to decode, that the indexer's
peak RSS stayed under a bound, and that nothing outside the root was opened or fetched.

    python benchmarks/hostile_corpus.py                      # build in a temp dir, run, print the table
    python benchmarks/hostile_corpus.py --no-big --write     # without the 81 MP control; write RESULTS.md
    python benchmarks/hostile_corpus.py --out corpus/ --build-only
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: how long any one file may take through the image entry point (decode, thumbnail, preprocess): the bounds
#: in media/images.py make the largest picture allowed (89 MP) the worst case, ~15 s on two heavily shared
#: cores here (docs/reliability.md); every hostile file is refused from its header in milliseconds
PER_FILE_LIMIT_S = 30.0
#: peak RSS allowed for the whole ``polymodal index`` run over the corpus (the model alone is ~0.6 GB)
RSS_LIMIT_MB = 3000
SECRET_TOKEN = b"POLYMODAL-SECRET-7f3a9c"


@dataclass
class Entry:
    name: str  # file name inside the corpus root (may be bytes-escaped in display)
    raw: bytes  # the exact relative path
    what: str  # what it is
    expect: str  # "fail" (a recorded failure), "index" (a good control), "skip" (never read: not a file we take)
    reason: str = ""  # a substring the recorded reason must hold (for "fail")


@dataclass
class FileResult:
    name: str
    what: str
    expect: str
    outcome: str  # failed / indexed / absent
    reason: str | None
    seconds: float | None  # through the image entry point, in a child process
    ok: bool


@dataclass
class CorpusResult:
    files: int = 0
    hostile: int = 0
    ok: int = 0
    index_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    slowest_file_s: float = 0.0
    slowest_file: str = ""
    secret_opens: list[str] = field(default_factory=list)
    http_connections: int = 0
    secret_in_library: bool = False
    results: list[FileResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# -- building -------------------------------------------------------------------------------------------------

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + extra + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def gif(screen: tuple[int, int], frame: tuple[int, int, int, int]) -> bytes:
    """A GIF with a logical screen and one frame (left, top, width, height) of one LZW-coded pixel."""
    sw, sh = screen
    left, top, fw, fh = frame
    head = b"GIF89a" + struct.pack("<HHBBB", sw, sh, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", left, top, fw, fh, 0) + b"\x02\x02\x44\x01\x00"
    return head + image + b";"


def bmp_claiming(width: int, height: int) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    body = b"\0" * 64
    return b"BM" + struct.pack("<IHHI", 14 + len(header) + len(body), 0, 0, 14 + len(header)) + header + body


def tiff_claiming(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 64)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8 + 64) + b"\0" * 64 + ifd


def webp_claiming(width: int, height: int) -> bytes:
    """A lossless WebP (VP8L) header announcing width x height (at most 16384 a side)."""
    bits = (width - 1) | ((height - 1) << 14)
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\0" * 16
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def jpeg_scan_bomb(side: int = 6000, repeats: int = 3000) -> bytes:
    """A progressive JPEG whose one luma AC scan is repeated: a small file whose every scan re-walks the image.

    libjpeg only warns about the bogus progression and decodes each copy; without a scan limit this file
    (about 150 kB) takes tens of seconds.
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    out = bytearray(data[:2])
    pos, last_dht, done = 2, b"", False
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            out += data[pos:]
            break
        length = int.from_bytes(data[pos + 2: pos + 4], "big")
        if marker != 0xDA:
            seg = data[pos: pos + 2 + length]
            last_dht = seg if marker == 0xC4 else last_dht
            out += seg
            pos += 2 + length
            continue
        end = pos + 2 + length
        while True:  # the entropy-coded data runs to the next marker that is not a stuffed 0xFF or a restart
            j = data.index(b"\xff", end)
            if data[j + 1] == 0 or 0xD0 <= data[j + 1] <= 0xD7:
                end = j + 2
                continue
            break
        scan = data[pos:j]
        header = data[pos + 4: pos + 2 + length]
        out += scan
        if not done and header[0] == 1 and header[1] == 1 and header[-3] > 0 and header[-1] >> 4 == 0:
            out += (last_dht + scan) * repeats  # a luma AC first scan, again and again
            done = True
        pos = j
    return bytes(out)


def _real_image(fmt: str, size: tuple[int, int] = (96, 72), seed: int = 0) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _flat_png(width: int, height: int) -> bytes:
    """A valid PNG of one grey, written row by row (compresses to ~0.1% of its pixels)."""
    raw = zlib.compressobj(9)
    row = b"\0" + b"\x80" * (3 * width)
    body = b"".join(raw.compress(row) for _ in range(height)) + raw.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b""))


def encode_video(fmt: str, codec: str, *, rate: int, size: tuple[int, int], frames: int, step: int) -> bytes:
    """A small real video made in memory with PyAV: ``frames`` flat grey frames of ``size`` (width, height),
    each ``step`` levels brighter than the one before (benchmarks/fuzz_ingest.py seeds its corpus with these)."""
    import av
    import numpy as np

    width, height = size
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), i * step, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():  # flush the frames the encoder still holds
            out.mux(packet)
    return buf.getvalue()


def _real_video() -> bytes | None:
    """A short real MP4 (PyAV), to truncate; None without PyAV."""
    try:
        return encode_video("mp4", "mpeg4", rate=10, size=(64, 48), frames=20, step=10)
    except ImportError:
        return None


def _wav_header(frames: int) -> bytes:
    data_len = frames * 2
    fmt = struct.pack("<HHIIHH", 1, 1, 44_100, 88_200, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", data_len))


def build(root: Path, secret_dir: Path, http_port: int, big: bool = True) -> list[Entry]:
    """Write the corpus under ``root`` and the secret files under ``secret_dir`` (outside it)."""
    root.mkdir(parents=True, exist_ok=True)
    secret_dir.mkdir(parents=True, exist_ok=True)
    (secret_dir / "secret.txt").write_bytes(SECRET_TOKEN + b"\n")
    (secret_dir / "secret.jpg").write_bytes(_real_image("JPEG", seed=99))  # decodable: indexing it would leak it
    (secret_dir / "album").mkdir(exist_ok=True)
    (secret_dir / "album" / "private.png").write_bytes(_real_image("PNG", seed=98))
    secret = str(secret_dir / "secret.txt")
    url = f"http://127.0.0.1:{http_port}/stream"
    entries: list[Entry] = []

    def put(name: str | bytes, data: bytes, what: str, expect: str = "fail", reason: str = "") -> None:
        raw = name if isinstance(name, bytes) else name.encode()
        (Path(os.fsdecode(os.path.join(os.fsencode(root), raw)))).parent.mkdir(parents=True, exist_ok=True)
        with open(os.path.join(os.fsencode(root), raw), "wb") as fh:
            fh.write(data)
        entries.append(Entry(os.fsdecode(raw), raw, what, expect, reason))

    photo = _real_image("JPEG", (400, 300), seed=1)
    png = _real_image("PNG", (300, 200), seed=2)
    # controls: they must be indexed
    put("good/photo.jpg", photo, "a good JPEG (control)", "index")
    put("good/picture.png", png, "a good PNG (control)", "index")
    put(b"good/caf\xe9_\xff.png", _real_image("PNG", seed=3), "a good PNG with a non-UTF-8 name (control)", "index")
    # empty, truncated, garbage
    for ext in ("jpg", "png", "gif", "webp"):
        put(f"empty/zero.{ext}", b"", f"zero-byte .{ext}", reason="empty")
    put("truncated/half.jpg", photo[: len(photo) // 2], "JPEG cut in half", reason="truncated")
    put("truncated/half.png", png[: len(png) // 2], "PNG cut in half", reason="")
    put("truncated/header_only.png", png[:33], "PNG signature and IHDR only", reason="")
    put("truncated/half.gif", _real_image("GIF", seed=4)[:60], "GIF cut short", reason="")
    put("truncated/half.webp", _real_image("WEBP", seed=5)[:40], "WebP cut short", reason="")
    put("garbage/random.jpg", os.urandom(4096), "random bytes named .jpg", reason="not a recognised image format")
    put("garbage/random.png", b"\x89PNG\r\n\x1a\n" + os.urandom(2048), "PNG signature then random bytes")
    put("garbage/text.jpg", b"just some text, not a photo\n" * 20, "text named .jpg", reason="not a recognised")
    put("garbage/html.webp", b"<html><body>hello</body></html>", "HTML named .webp", reason="not a recognised")
    put("garbage/bad_crc.png", png[:20] + bytes([png[20] ^ 0xFF]) + png[21:], "PNG with a broken IHDR CRC")
    put("garbage/eps.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n",
        "EPS (Ghostscript) named .jpg", reason="")
    put(b"garbage/name_\xff\xfe.jpg", os.urandom(512), "garbage with a non-UTF-8 name")
    # pixel bombs (Pillow's limit is 89,478,485 pixels; twice that is where Pillow itself stops)
    put("bombs/png_30000x30000.png", png_claiming(30_000, 30_000), "PNG header of 900 MP (10x the limit)",
        reason="too many pixels")
    put("bombs/png_10000x10000.png", png_claiming(10_000, 10_000), "PNG of 100 MP: over the limit, under 2x "
        "(Pillow only warns)", reason="too many pixels")
    put("bombs/bmp_50000x50000.bmp", bmp_claiming(50_000, 50_000), "BMP header of 2.5 GP", reason="too many pixels")
    put("bombs/tiff_100000x100000.tif", tiff_claiming(100_000, 100_000), "TIFF header of 10 GP",
        reason="too many pixels")
    put("bombs/webp_16384x16384.webp", webp_claiming(16_384, 16_384), "WebP header of 268 MP",
        reason="")
    if big:
        put("bombs/under_limit_9000x9000.png", _flat_png(9000, 9000), "a flat 81 MP PNG, just under the limit: "
            "decoded, the worst case for time and memory", "index")
    put("bombs/png_ztxt.png", png_claiming(8, 8, _png_chunk(b"zTXt", b"bomb\0\0" + zlib.compress(b"A" * 50_000_000,
                                                                                               9))),
        "PNG with a zTXt chunk inflating to 50 MB", reason="")
    put("bombs/jpeg_scan_bomb.jpg", jpeg_scan_bomb(), "progressive JPEG, one scan repeated 3000 times",
        reason="scan bomb")
    # GIF tricks
    put("gif/screen_65535.gif", gif((65535, 65535), (0, 0, 1, 1)), "GIF logical screen 65535 x 65535",
        reason="too many pixels")
    put("gif/extent.gif", gif((16, 16), (0, 0, 65535, 65535)), "GIF 16x16 screen, frame extent 65535 x 65535",
        reason="")
    put("gif/offset.gif", gif((16, 16), (65000, 65000, 100, 100)), "GIF frame placed far outside its screen",
        reason="")
    # Pillow sizes this one from its frame: a 1 x 1 picture, harmless, so it is indexed like any tiny image
    put("gif/zero_screen.gif", gif((0, 0), (0, 0, 1, 1)), "GIF with a 0 x 0 logical screen, 1 x 1 frame", "index")
    put("gif/zero_frame.gif", gif((16, 16), (0, 0, 0, 0)), "GIF with a 0 x 0 frame", reason="")
    # video and playlists (their extensions are scanned only once video ingest is in)
    video = _real_video()
    put("video/garbage.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096), "MP4 ftyp then random bytes")
    if video:
        put("video/truncated.mp4", video[: len(video) // 3], "a real MP4 cut to a third")
    put("video/zero.mkv", b"", "zero-byte .mkv")
    put("video/playlist_secret.mp4", f"#EXTM3U\n#EXTINF:10,\nfile://{secret}\n#EXTINF:10,\n{secret}\n".encode(),
        "HLS playlist naming a local secret, as .mp4")
    put("video/playlist_http.mov", f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{url}\n#EXT-X-ENDLIST\n".encode(),
        "HLS playlist naming an http:// address, as .mov")
    put("video/concat_secret.mkv", f"ffconcat version 1.0\nfile '{secret}'\n".encode(),
        "ffconcat script naming the secret, as .mkv")
    wav = _wav_header(44_100 * 60)  # a RIFF header promising a minute of audio, followed by a few bytes
    put("audio/truncated.wav", wav + b"\0" * 100, "WAV header promising 60 s, 100 bytes of data")
    put("audio/garbage.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + os.urandom(2048), "ID3 tag then random bytes")
    put("audio/playlist_secret.ogg", f"#EXTM3U\n{secret}\n".encode(), "HLS playlist naming the secret, as .ogg")
    put("audio/zero.flac", b"", "zero-byte .flac")
    put("video/playlist.m3u8", f"#EXTM3U\n#EXTINF:10,\n{url}\n".encode(), "an .m3u8 playlist", "skip")
    # links and special files
    links = root / "links"
    links.mkdir(exist_ok=True)
    os.symlink("loop_b.jpg", links / "loop_a.jpg")
    os.symlink("loop_a.jpg", links / "loop_b.jpg")
    entries += [Entry("links/loop_a.jpg", b"links/loop_a.jpg", "symlink loop", "fail", "symlink loop"),
                Entry("links/loop_b.jpg", b"links/loop_b.jpg", "symlink loop", "fail", "symlink loop")]
    os.symlink("..", links / "up")
    entries.append(Entry("links/up", b"links/up", "directory symlink back up the tree", "fail", "symlink loop"))
    os.symlink(secret_dir / "secret.jpg", links / "outside.jpg")
    entries.append(Entry("links/outside.jpg", b"links/outside.jpg", "symlink to a photo outside the root", "fail",
                         "outside the indexed folders"))
    os.symlink(secret_dir / "album", links / "outside_dir")
    entries.append(Entry("links/outside_dir", b"links/outside_dir", "symlink to a folder outside the root", "fail",
                         "outside the indexed folders"))
    os.symlink("/dev/zero", links / "zero_device.jpg")
    entries.append(Entry("links/zero_device.jpg", b"links/zero_device.jpg", "symlink to /dev/zero", "fail",
                         "outside the indexed folders"))
    os.symlink("missing.png", links / "dangling.png")
    entries.append(Entry("links/dangling.png", b"links/dangling.png", "dangling symlink", "fail", "broken symlink"))
    os.mkfifo(links / "pipe.jpg")
    entries.append(Entry("links/pipe.jpg", b"links/pipe.jpg", "a FIFO named .jpg (reading would block)", "skip"))
    with open(root / "sparse.png", "wb") as fh:
        fh.write(png_claiming(64, 64))
        fh.truncate(4 << 30)  # 4 GiB, sparse: reading it whole would take 4 GiB of memory
    entries.append(Entry("sparse.png", b"sparse.png", "sparse 4 GiB file with a PNG header", "fail", "too large"))
    return entries


# -- watching -------------------------------------------------------------------------------------------------

class SecretWatch:
    """inotify on the secret folder and its subfolder: every open or read of anything in them is recorded."""

    IN_ACCESS, IN_OPEN, IN_NONBLOCK = 0x1, 0x20, 0x800

    def __init__(self, folders: list[Path]) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(self.IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.names: dict[int, str] = {}
        for folder in folders:
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(folder), self.IN_OPEN | self.IN_ACCESS)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
            self.names[wd] = str(folder)

    def events(self) -> list[str]:
        out = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            pos = 0
            while pos < len(data):
                wd, mask, _cookie, length = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16: pos + 16 + length].rstrip(b"\0").decode(errors="replace")
                out.append(f"{self.names.get(wd, '?')}/{name} ({'open' if mask & self.IN_OPEN else 'read'})")
                pos += 16 + length
        return out

    def close(self) -> None:
        os.close(self.fd)


class Listener:
    """A TCP listener on 127.0.0.1 counting connections (an HTTP fetch the playlists would make)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


# -- running --------------------------------------------------------------------------------------------------

_TIMER = r"""
import json, os, sys, time
from polymodal.models import load_model
from polymodal.media.thumbnails import make_thumbnail
enc = load_model("lite")
print("READY", flush=True)
for line in sys.stdin:
    raw = os.fsencode(json.loads(line))
    t = time.perf_counter()
    try:
        with open(raw, "rb") as fh:
            data = fh.read(1 << 30)
        img = enc.load_image(data)
        make_thumbnail(img)
        enc.preprocess_image(img)
        out = "decoded"
    except Exception as exc:
        out = type(exc).__name__ + ": " + str(exc)[:200]
    print(json.dumps([time.perf_counter() - t, out]), flush=True)
"""


def _timed(path: bytes) -> bool:
    """Files the image entry point is timed on: regular image files. Links, FIFOs and the sparse file are the
    scan's business; video and audio decode in a child process killed at its own time limit."""
    from polymodal.library.scan import IMAGE_EXTENSIONS

    ext = os.path.splitext(path)[1].decode("ascii", "replace").lower()
    return (ext in IMAGE_EXTENSIONS and os.path.isfile(path) and not os.path.islink(path)
            and os.path.getsize(path) <= (1 << 30))


def time_entry_point(root: Path, entries: list[Entry], env: dict[str, str]) -> dict[str, tuple[float, str]]:
    """Seconds each regular file takes through the image entry point, in one child the parent kills on overrun."""
    import select

    proc = subprocess.Popen([sys.executable, "-c", _TIMER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdin is not None and proc.stdout is not None
    times: dict[str, tuple[float, str]] = {}
    try:
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("the timing child did not start")
        for e in entries:
            path = os.path.join(os.fsencode(root), e.raw)
            if not _timed(path):
                continue
            proc.stdin.write(json.dumps(os.fsdecode(path)) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], PER_FILE_LIMIT_S)
            if not ready:
                times[e.name] = (PER_FILE_LIMIT_S, "over the per-file limit: killed")
                proc.kill()
                break
            secs, outcome = json.loads(proc.stdout.readline())
            times[e.name] = (secs, outcome)
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.kill()
        proc.wait()
    return times


def time_in_process(root: Path, entries: list[Entry], encoder: Any) -> dict[str, tuple[float, str]]:
    """The same timing as ``time_entry_point`` with an already loaded encoder (the test suite's short variant;
    a hang there is caught by the test's own timeout rather than by killing a child)."""
    from polymodal.media.thumbnails import make_thumbnail

    times = {}
    for e in entries:
        path = os.path.join(os.fsencode(root), e.raw)
        if not _timed(path):
            continue
        started = time.perf_counter()
        try:
            with open(path, "rb") as fh:
                img = encoder.load_image(fh.read())
            make_thumbnail(img)
            encoder.preprocess_image(img)
            outcome = "decoded"
        except Exception as exc:  # noqa: BLE001 - recorded: what the entry point did with this file
            outcome = f"{type(exc).__name__}: {exc}"
        times[e.name] = (time.perf_counter() - started, outcome)
    return times


def run(workdir: Path, *, log: Any = print, encoder: Any = None, big: bool = True) -> CorpusResult:
    """Build, time and index the corpus, and judge every file. With ``encoder`` (an already loaded ``lite``),
    timing and indexing happen in this process (the short variant in the test suite); peak RSS is then not
    measured."""
    from polymodal.library import Library
    from polymodal.library.media_ingest import MEDIA_EXTENSIONS
    from polymodal.library.scan import image_extensions
    scanned = image_extensions() | MEDIA_EXTENSIONS
    listener = Listener()
    root, secret_dir, lib_dir = workdir / "corpus", workdir / "secret", workdir / "library"
    entries = build(root, secret_dir, listener.port, big)
    result = CorpusResult(files=len(entries), hostile=sum(1 for e in entries if e.expect != "index"))
    env = {**os.environ, "POLYMODAL_MODEL": "lite", "HF_HUB_OFFLINE": "1"}
    watch = SecretWatch([secret_dir, secret_dir / "album"])
    try:
        log(f"{len(entries)} files; timing each through the image entry point")
        if encoder is not None:
            times = time_in_process(root, entries, encoder)
            started = time.monotonic()
            Library.open(lib_dir, model=encoder).add([root])
            result.index_seconds = round(time.monotonic() - started, 1)
        else:
            # The indexer first: it is then this process's only child so far, so the children's peak RSS is its.
            _index_child(root, lib_dir, env, result, log)
            times = time_entry_point(root, entries, env)
        result.secret_opens = watch.events()
        # The watch must see an open when there is one, or its silence above proves nothing.
        (secret_dir / "secret.txt").read_bytes()
        if not any("secret.txt" in e for e in watch.events()):
            result.problems.append("the inotify watch did not see a deliberate open of the secret")
    finally:
        watch.close()
        listener.close()
    _judge(result, entries, root, lib_dir, scanned, times, listener.connections)
    return result


def _index_child(root: Path, lib_dir: Path, env: dict[str, str], result: CorpusResult, log: Any) -> None:
    log("indexing the corpus with polymodal index")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "polymodal", "index", str(root), "--library", str(lib_dir),
                             "--model", "lite", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        result.problems.append("polymodal index did not finish within 600 s")
    result.index_seconds = round(time.monotonic() - started, 1)
    result.peak_rss_mb = round(_peak_rss_mb(), 1)
    if proc.returncode != 0:
        result.problems.append(f"polymodal index exited {proc.returncode}: {err.decode()[-1500:]}")


def judge(e: Entry, outcome: str, reason: str | None, scanned: frozenset[str]) -> tuple[bool, str]:
    """Whether one file came out as the corpus says it must, and if not, why (a line for ``problems``).

    A file that must be a recorded failure is never excused as "absent": if its extension is no longer scanned,
    the corpus has stopped testing it, and that is itself a failure to fix (in the corpus or in the scan)."""
    ext = os.path.splitext(e.name)[1].lower()
    if e.expect == "fail" and ext and ext not in scanned and not e.name.startswith("links/"):
        return False, (f"must be a recorded failure, but {ext} files are not scanned, so it was never tested "
                       f"(got {outcome}); mark it \"skip\" in build() if it is meant to be left unread")
    ok = {"fail": outcome == "failed" and bool(reason) and e.reason.lower() in (reason or "").lower(),
          "index": outcome == "indexed", "skip": outcome == "absent"}[e.expect]
    return ok, "" if ok else f"expected {e.expect}, got {outcome} ({reason})"


def _judge(result: CorpusResult, entries: list[Entry], root: Path, lib_dir: Path, scanned: frozenset[str],
           times: dict[str, tuple[float, str]], connections: int) -> None:
    from polymodal.library import Library

    result.http_connections = connections
    result.secret_in_library = any(SECRET_TOKEN in p.read_bytes() for p in lib_dir.rglob("*") if p.is_file())

    lib = Library.open(lib_dir, create=False)
    failures = {f.path: f.reason for f in lib.failures()}
    items = lib.store.scan(lib.store.items(), ["paths"]).to_pylist() if lib.store.items() is not None else []
    indexed = {p for r in items for p in r["paths"]}
    for e in entries:
        path = os.fsencode(root) + b"/" + e.raw
        key = path.decode("utf-8", "backslashreplace")
        outcome = "failed" if key in failures else "indexed" if key in indexed else "absent"
        reason = failures.get(key)
        secs = times.get(e.name, (None, ""))[0]
        ok, why = judge(e, outcome, reason, scanned)
        if secs is not None and secs >= PER_FILE_LIMIT_S:
            ok, why = False, f"took {secs:.1f} s, over {PER_FILE_LIMIT_S:g} s"
        result.results.append(FileResult(e.name, e.what, e.expect, outcome, reason, secs, ok))
        if why:
            result.problems.append(f"{e.name}: {why}")
    result.ok = sum(1 for r in result.results if r.ok)
    timed = [(r.seconds, r.name) for r in result.results if r.seconds is not None]
    if timed:
        result.slowest_file_s, result.slowest_file = max(timed)
        result.slowest_file_s = round(result.slowest_file_s, 3)
    if result.secret_opens:
        result.problems.append(f"files outside the root were opened: {result.secret_opens}")
    if result.http_connections:
        result.problems.append(f"{result.http_connections} connection(s) to the playlists' HTTP address")
    if result.secret_in_library:
        result.problems.append("the secret's content is in the library")
    if result.peak_rss_mb > RSS_LIMIT_MB:
        result.problems.append(f"peak RSS {result.peak_rss_mb} MB over {RSS_LIMIT_MB} MB")
    return result


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory)")
    ap.add_argument("--build-only", action="store_true", help="only write the corpus")
    ap.add_argument("--json", type=Path, help="write the result here")
    ap.add_argument("--no-big", action="store_true", help="leave out the legitimate 81 MP PNG (its decode dominates "
                    "the time and the peak RSS)")
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results_md import load_average, machine, write_section

    load_before = load_average()
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="polymodal-hostile-")
        args.workdir = Path(tmp)
    try:
        if args.build_only:
            entries = build(args.workdir / "corpus", args.workdir / "secret", 9)
            print(f"{len(entries)} files in {args.workdir / 'corpus'}")
            return 0
        result = run(args.workdir, log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True),
                     big=not args.no_big)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    for r in result.results:
        secs = f"{r.seconds:7.3f}" if r.seconds is not None else "      -"
        print(f"{'ok ' if r.ok else 'BAD'} {secs} s  {r.name:34} {r.outcome:8} {r.reason or ''}")
    summary = {k: v for k, v in asdict(result).items() if k != "results"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    if args.write:
        never_read = [r.name for r in result.results if r.expect == "skip" and r.ok]
        hostile_images = [r.seconds for r in result.results if r.seconds is not None and r.expect != "index"]
        name = "hostile_corpus_no_big" if args.no_big else "hostile_corpus"
        text = "\n".join([
            f"## Hostile corpus{' without the 81 MP image' if args.no_big else ''} (benchmarks/hostile_corpus.py)",
            "",
            f"Machine: {machine()}. {result.files} files ({result.hostile} hostile): "
            f"{sum(1 for r in result.results if r.outcome == 'failed' and r.ok)} recorded failures with reasons, "
            f"{len(never_read)} never read ({', '.join(never_read) or 'none'}), "
            f"{sum(1 for r in result.results if r.expect == 'index' and r.ok)} controls indexed; "
            f"{result.ok}/{result.files} as expected. Hostile files through the image entry point: at most "
            f"{max(hostile_images, default=0) * 1000:.1f} ms each; slowest file {result.slowest_file} "
            f"{result.slowest_file_s:.1f} s. `polymodal index` {result.index_seconds:.0f} s, peak RSS "
            f"{result.peak_rss_mb / 1024:.2f} GB. Opens of the secret folder (inotify): {len(result.secret_opens)}; "
            f"HTTP connections: {result.http_connections}. Problems: {len(result.problems)}"
            + (":\n\n" + "\n".join(f"- {p}" for p in result.problems) if result.problems else "."),
        ])
        write_section(Path(__file__).resolve().parent / "RESULTS.md", name, text, load_before=load_before)
    return 0 if not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
