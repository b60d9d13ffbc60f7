"""Library re-scan benchmark: ``index`` over 10,000 files that have not changed since the last run.

Target (issue 3): <= 2 s. The library is filled through the real ingest path with a trivial encoder, since
what is measured is the re-scan, which embeds (and loads) nothing: the walk, one stat per file, and the
comparison with the scan snapshot (or, without one, with the files table in LanceDB). The CLI figure is
the whole ``polymodal index`` command: interpreter start, imports, scan.

    python benchmarks/library_rescan.py --files 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def make_fake_encoder() -> Any:
    """A 384-d stand-in: mean colour through a fixed random projection. Fast, deterministic."""
    from polymodal.models.base import Encoder

    class MeanColour(Encoder):
        backend = "bench"

        @property
        def dim(self) -> int:
            return 384

        def preprocess_image(self, image: Any) -> Any:
            return np.asarray(image.resize((8, 8)), np.float32).mean(axis=(0, 1)) / 255.0

        def _embed_image_batch(self, batch: list[Any]) -> np.ndarray:
            proj = np.random.default_rng(0).normal(size=(3, 384)).astype(np.float32)
            return np.stack(batch) @ proj + 1e-3

        def _embed_text_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
            return np.ones((len(texts), 384), np.float32)

    return MeanColour("bench-mean-colour", device="cpu")


def make_files(root: Path, n: int) -> None:
    from PIL import Image

    per_dir = 100
    for i in range(n):
        d = root / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir(parents=True)
        px = np.frombuffer(i.to_bytes(4, "little") * 12, np.uint8).reshape(4, 4, 3)
        Image.fromarray(px).save(d / f"img{i:05d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from polymodal.library import Library

    work = Path(tempfile.mkdtemp())
    try:
        photos, lib_dir = work / "photos", work / "lib"
        t = time.perf_counter()
        make_files(photos, args.files)
        make_s = time.perf_counter() - t
        t = time.perf_counter()
        first = Library.open(lib_dir, model=make_fake_encoder()).add([photos])
        first_s = time.perf_counter() - t
        assert first.added == args.files, first
        api = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            lib = Library.open(lib_dir)  # fresh: nothing cached from the first run; no model is loaded
            report = lib.add([photos])
            api.append(time.perf_counter() - t)
            assert report.skipped == args.files and report.added == 0, report
            assert lib._encoder is None
        # The same without the scan snapshot: the files table is read from LanceDB (import included, as
        # lancedb is already imported in this process after the first run, only the reads are timed here).
        full = []
        for _ in range(args.repeat):
            (lib_dir / "scan-cache.json").unlink()
            t = time.perf_counter()
            report = Library.open(lib_dir).add([photos])
            full.append(time.perf_counter() - t)
            assert report.skipped == args.files and report.added == 0, report
        cli = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "polymodal", "index", str(photos), "--library", str(lib_dir)],
                           check=True, capture_output=True)
            cli.append(time.perf_counter() - t)
        print(json.dumps({
            "files": args.files, "make_files_s": round(make_s, 1), "first_index_s": round(first_s, 1),
            "rescan_api_median_s": round(float(np.median(api)), 3), "rescan_api_min_s": round(min(api), 3),
            "rescan_api_no_snapshot_median_s": round(float(np.median(full)), 3),
            "rescan_cli_median_s": round(float(np.median(cli)), 3), "rescan_cli_min_s": round(min(cli), 3),
        }))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
