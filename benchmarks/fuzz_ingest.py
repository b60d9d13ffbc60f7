"""Coverage-guided fuzzing (atheris, libFuzzer) of the image and video ingest entry points, for a bounded time.

Targets, each one input at a time:

- ``image``: ``media.images.load_image`` as the indexer calls it (bytes, reduced-size JPEG decode), then the
  thumbnail and the EXIF metadata. The contract: ``ImageDecodeError`` (a recorded failure) or an image;
  anything else escaping is a bug, and so is an input slower than ``-timeout``.
- ``video``: the decoding child's own work (``media.video.child_decode``) in-process, on the bytes written to
  a file: a probe, then the full analysis. The contract: a JSON header (``{"error": ...}`` for a file it
  cannot read) and its payload; anything else escaping is a bug (the parent would see only "the decoder
  failed"), a crash of FFmpeg kills the fuzzer.

    pip install ".[fuzz]"                     # atheris
    python benchmarks/fuzz_ingest.py --seconds 120            # both targets, 120 s each, summary as JSON
    python benchmarks/fuzz_ingest.py --target image --seconds 600 --keep tests/hardening/regressions

Inputs that fail are copied into ``--keep``/<target>/ (tests/hardening/test_hardening_fuzz.py replays every
file there through ``one_input``). Python code of Pillow and polymodal is instrumented for coverage; the C
decoders are not (no libFuzzer build of libjpeg or FFmpeg here), so they are reached, not steered.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGETS = ("image", "video")
#: seconds one input may take before libFuzzer calls it a hang
PER_INPUT_TIMEOUT = 10


def image_one(data: bytes) -> None:
    from PIL import Image

    from polymodal.errors import ImageDecodeError
    from polymodal.library.ingest import _header
    from polymodal.media.images import load_image
    from polymodal.media.metadata import read_metadata
    from polymodal.media.thumbnails import make_thumbnail

    try:
        img = load_image(data, min_side=448)
    except ImageDecodeError:
        return
    make_thumbnail(img)
    _header(data)  # what the indexer reads for EXIF and the true size; must never raise
    try:
        opened = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - it decoded above; a second open failing is not the contract under test
        return
    with opened:
        read_metadata(opened)  # documented never to fail


def video_one(data: bytes, workdir: str | None = None) -> None:
    from polymodal.media.video import child_decode

    fd, path = tempfile.mkstemp(suffix=".mp4", dir=workdir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        for params in ({"probe": True}, {"probe": False, "max_segment": 10.0, "frames": 3, "size": 64}):
            header, _ = child_decode(path, params)
            json.dumps(header)  # what media.worker sends: a header JSON cannot hold is a crash of the child
            if "error" in header:
                return
    finally:
        os.unlink(path)


def one_input(target: str, data: bytes) -> None:
    """Run one input through a target; raising means a bug."""
    if target == "image":
        image_one(data)
    else:
        video_one(data)


def seeds(target: str, folder: Path) -> None:
    """Small valid inputs of every format, for the fuzzer to mutate."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    if target == "image":
        for fmt, kw in [("JPEG", {}), ("JPEG", {"progressive": True}), ("PNG", {}), ("GIF", {}), ("WEBP", {}),
                        ("BMP", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_deflate"}),
                        ("WEBP", {"lossless": True})]:
            buf = io.BytesIO()
            img.save(buf, fmt, **kw)
            (folder / f"seed_{fmt.lower()}_{len(kw)}").write_bytes(buf.getvalue())
        buf = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = 6
        exif[0x010F] = "Camera"
        img.save(buf, "JPEG", exif=exif)
        (folder / "seed_jpeg_exif").write_bytes(buf.getvalue())
        return
    import av  # noqa: F401 - without PyAV the video target fails here, not with no seeds at all
    from hostile_corpus import encode_video  # a sibling script: benchmarks/ is on sys.path when one runs

    for fmt, codec in (("mp4", "mpeg4"), ("matroska", "mpeg4"), ("webm", "libvpx")):
        try:
            video = encode_video(fmt, codec, rate=5, size=(32, 24), frames=6, step=40)
        except Exception:  # noqa: BLE001 - a codec missing from this FFmpeg build: one seed fewer
            continue
        (folder / f"seed_{fmt}").write_bytes(video)


def _child(target: str, args: list[str]) -> None:
    """Inside the fuzzing process: instrument, then hand over to libFuzzer (which exits the process)."""
    import atheris

    with atheris.instrument_imports(include=["PIL", "polymodal"]):
        import PIL.Image  # noqa: F401 - imported here so its plugins are instrumented
        from PIL import (  # noqa: F401
            BmpImagePlugin,
            GifImagePlugin,
            JpegImagePlugin,
            PngImagePlugin,
            TiffImagePlugin,
            WebPImagePlugin,
        )

        import polymodal.media.images
        import polymodal.media.metadata
        if target == "video":
            import polymodal.media.video  # noqa: F401
    workdir = tempfile.mkdtemp(prefix="fuzz-video-")

    def test(data: bytes) -> None:
        if target == "image":
            image_one(data)
        else:
            video_one(data, workdir)

    atheris.Setup([sys.argv[0], *args], test)
    atheris.Fuzz()


def fuzz(target: str, seconds: int, workdir: Path, keep: Path | None) -> dict[str, Any]:
    corpus, artifacts = workdir / target / "corpus", workdir / target / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    seeds(target, corpus)
    n_seeds = len(list(corpus.iterdir()))
    args = [str(corpus), f"-max_total_time={seconds}", f"-timeout={PER_INPUT_TIMEOUT}", "-rss_limit_mb=4096",
            "-print_final_stats=1", f"-artifact_prefix={artifacts}/", "-max_len=65536"]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, "--child", target, "--", *args], capture_output=True,
                          text=True, timeout=seconds + 300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    log = proc.stderr
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log) or re.findall(r"Done (\d+) runs", log)
    found = sorted(p for p in artifacts.iterdir() if p.is_file())
    kept = []
    if keep is not None and found:
        (keep / target).mkdir(parents=True, exist_ok=True)
        for p in found:
            shutil.copy(p, keep / target / p.name)
            kept.append(str(keep / target / p.name))
    tail = [ln for ln in log.splitlines() if "Error" in ln or "Traceback" in ln or "==" in ln][:20]
    return {"target": target, "seconds": round(time.monotonic() - started, 1), "executions": int(runs[-1]) if runs
            else 0, "seeds": n_seeds, "corpus_after": len(list(corpus.iterdir())), "exit_code": proc.returncode,
            "failures": [p.name for p in found], "kept": kept, "log": tail}


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[4:] if sys.argv[3:4] == ["--"] else sys.argv[3:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", choices=TARGETS, action="append", help="default: both")
    ap.add_argument("--seconds", type=int, default=120, help="fuzzing time per target")
    ap.add_argument("--keep", type=Path, help="copy failing inputs into KEEP/<target>/")
    ap.add_argument("--workdir", type=Path, help="corpus and artifacts (default: a temporary directory)")
    ap.add_argument("--json", type=Path, help="write the summary here")
    args = ap.parse_args()
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="polymodal-fuzz-")
        args.workdir = Path(tmp)
    try:
        results = [fuzz(t, args.seconds, args.workdir, args.keep) for t in (args.target or TARGETS)]
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(not r["failures"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
