"""`polymodal index --ray` against local indexing on this machine: the engine's overhead, and per-core rates.

Builds the same photo set twice with the `lite` model, once in this process (``Library.add``) and once on a
local Ray cluster started here (``Library.add(ray="auto")``), checks the two libraries are the same (ids,
metadata, thumbnails, embeddings within 1e-4), and reports wall time, the steady rate between the first and
the last commit, and the fixed costs (model load, cluster start). Then measures the two per-file stages on
one core each, decoding (the Ray tasks' work) and embedding (the actors' work), at the photo size given and
on a few 12-megapixel JPEGs, which is what a cluster-size estimate needs.

    python benchmarks/ray_index.py --n 300 --side 1024 --commit-sizes 64 256 --write
    python benchmarks/ray_index.py --commits-only --commit-sizes 64 256

``--write`` puts the section "ray_index" of benchmarks/RESULTS.md: the two runs, the per-core rates and the
driver's commit rate at each ``--commit-sizes``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "ray"))  # the tests' photo maker
sys.path.insert(0, str(HERE))
from results_md import load_average, machine, write_section  # noqa: E402


def photos_from(sources: list[Path], folder: Path, n: int, side: int, seed: int = 0) -> None:
    """``n`` distinct JPEGs about ``side`` px on the long side, cut from real photos and upscaled as needed."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pics = [Image.open(s).convert("RGB") for s in sources]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = pics[i % len(pics)]
        w, h = src.size
        cw, ch = int(rng.integers(w // 2, w)), int(rng.integers(h // 2, h))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = src.crop((x, y, x + cw, y + ch))
        scale = side / max(img.size)
        img = img.resize((max(8, int(img.width * scale)), max(8, int(img.height * scale))))
        img.save(folder / f"p{i:05d}.jpg", quality=90)


def sources() -> list[Path]:
    import skimage
    import sklearn.datasets

    sk = Path(skimage.__file__).parent / "data"
    sl = Path(sklearn.datasets.__file__).parent / "images"
    return [sk / "chelsea.png", sk / "coffee.png", sk / "rocket.jpg", sk / "motorcycle_left.png",
            sk / "astronaut.png", sl / "flower.jpg", sl / "china.jpg"]


def timed_add(lib, folder: Path, **kw) -> dict:
    stamps: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    report = lib.add([folder], progress=lambda d, n: stamps.append((time.perf_counter(), d)), **kw)
    wall = time.perf_counter() - t0
    (t_first, d_first), (t_last, d_last) = stamps[1], stamps[-1]  # after the first commit: model loaded, pipeline full
    steady = (d_last - d_first) / (t_last - t_first) if t_last > t_first else float("nan")
    return {"added": report.added, "wall_s": round(wall, 1), "first_commit_s": round(t_first - t0, 1),
            "overall_img_s": round(report.added / wall, 2), "steady_img_s": round(steady, 2)}


def stage_rates(folder: Path, limit: int = 64) -> dict:
    """Images per second on ONE core: decoding as a Ray task does it, then embedding as an actor does."""
    import torch
    from PIL import Image

    from polymodal.library.distributed import _DecodeOnly
    from polymodal.library.ingest import content_hash
    from polymodal.media.thumbnails import make_thumbnail
    from polymodal.models import load_model

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    enc = load_model("lite")
    files = sorted(folder.glob("*.jpg"))[:limit]
    dec = _DecodeOnly(enc.input_size)
    t0, c0 = time.perf_counter(), time.process_time()
    pixels = []
    for f in files:
        data = f.read_bytes()
        content_hash(data)
        img = dec.load_image(data)
        make_thumbnail(img)
        pixels.append(dec.preprocess_image(img))
    decode, decode_cpu = len(files) / (time.perf_counter() - t0), len(files) / (time.process_time() - c0)
    inputs = [enc.preprocess_image(Image.fromarray(p)) for p in pixels]
    enc._embed_image_batch(inputs[:8])  # warm up
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(inputs), 32):
        enc._embed_image_batch(inputs[i: i + 32])
    embed, embed_cpu = len(inputs) / (time.perf_counter() - t0), len(inputs) / (time.process_time() - c0)
    # Per CPU-second (process time, all threads) is what one dedicated core would do: on a shared, loaded
    # machine the wall-clock rates mostly measure the other jobs.
    return {"decode_img_s_wall": round(decode, 1), "decode_img_per_cpu_s": round(decode_cpu, 1),
            "embed_img_s_wall": round(embed, 1), "embed_img_per_cpu_s": round(embed_cpu, 1),
            "embed_runtime": enc.runtimes.get("image")}


def commit_rate(workdir: Path, batches: int = 40, size: int = 64, dim: int = 384) -> dict:
    """What the single writer sustains: the driver's per-batch commits (items, then files) of ready rows,
    with 8 kB thumbnails, through the library's own Store, as a Ray run makes them.
    """
    from datetime import UTC, datetime

    import pyarrow as pa

    from polymodal.library.schema import LibraryMeta, files_schema, items_schema, write_meta
    from polymodal.library.store import Store

    root = workdir / "commits"
    root.mkdir(parents=True)
    meta = LibraryMeta(model="synthetic", dim=dim)
    write_meta(root, meta)
    store = Store(root, meta)
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    t0, c0 = time.perf_counter(), time.process_time()
    for b in range(batches):
        ids = [f"{b * size + i:016x}" for i in range(size)]
        paths = [f"/photos/{i}.jpg" for i in ids]
        vec = rng.normal(size=(size, dim)).astype(np.float32)
        items = {"id": ids, "hash": ids, "kind": ["image"] * size, "paths": [[p] for p in paths],
                 "size": [2_000_000] * size, "mtime": [now] * size, "width": [4000] * size, "height": [3000] * size,
                 "taken": [now] * size, "date": [now] * size, "camera": ["X"] * size, "latitude": [None] * size,
                 "longitude": [None] * size, "orientation": [1] * size, "tags": [[] for _ in range(size)],
                 "thumbnail": [rng.bytes(8192) for _ in range(size)], "added": [now] * size,
                 "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), dim)}
        store.items(create=True)
        store.commit_items(None, (), pa.table(items, schema=items_schema(dim)))
        files = {"path": paths, "path_raw": [p.encode() for p in paths], "size": [2_000_000] * size,
                 "mtime_ns": [0] * size, "item_id": ids, "error": [None] * size, "seen": [now] * size}
        store.upsert(store.files(), "path", None, pa.table(files, schema=files_schema()))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"commits_of": size, "batches": batches, "img_s_wall": round(batches * size / wall, 1),
            "img_per_cpu_s": round(batches * size / cpu, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="photos in the set")
    ap.add_argument("--side", type=int, default=1024, help="long side of each photo, px")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--commits-only", action="store_true", help="only the single writer's commit rate")
    ap.add_argument("--commit-sizes", type=int, nargs="+", default=[64], help="files per driver commit to time")
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    load_before = load_average()
    out: list[dict] = []

    def emit(row: dict) -> None:
        out.append(row)
        print(json.dumps(row), flush=True)

    from ray_helpers import assert_same_library

    from polymodal.library import Library
    from polymodal.models import load_model

    work = Path(tempfile.mkdtemp(dir=args.workdir))
    if args.commits_only:
        try:
            for size in args.commit_sizes:
                emit({"writer": "driver commits", **commit_rate(work / f"c{size}", size=size)})
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if args.write:
            write_section(HERE / "RESULTS.md", "ray_commits", report(out, args), load_before=load_before)
        return
    try:
        src = work / "photos"
        photos_from(sources(), src, args.n, args.side)
        emit({"machine": {"cpus": os.cpu_count(), "load_average": [round(x, 1) for x in os.getloadavg()]},
                          "n": args.n, "side": args.side})

        t0 = time.perf_counter()
        enc = load_model("lite")
        load_s = time.perf_counter() - t0
        local = Library.open(work / "local", model=enc)
        res = timed_add(local, src)
        emit({"mode": "local", "model_load_s": round(load_s, 1), **res})

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        start_s = time.perf_counter() - t0
        on_ray = Library.open(work / "ray", model="lite")
        res = timed_add(on_ray, src, ray="auto")
        emit({"mode": "ray", "cluster_start_s": round(start_s, 1), **res})
        assert_same_library(local, on_ray)
        emit({"same_library": True})
        ray.shutdown()

        emit({"stages": "one core", "side": args.side, **stage_rates(src)})
        big = work / "big"
        photos_from(sources(), big, 16, 4000, seed=1)  # 4000x3000-ish: a 12-megapixel phone photo
        emit({"stages": "one core", "side": 4000, **stage_rates(big, 16)})
        for size in args.commit_sizes:
            emit({"writer": "driver commits", **commit_rate(work / f"c{size}", size=size)})
        emit({"load_average_end": [round(x, 1) for x in os.getloadavg()]})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.write:
        write_section(HERE / "RESULTS.md", "ray_index", report(out, args), load_before=load_before)


def report(rows: list[dict], args: argparse.Namespace) -> str:
    """The section: what ``main`` measured, as tables."""
    lines = ["## `polymodal index --ray` against local indexing (benchmarks/ray_index.py)", "",
             f"Machine: {machine()}. `lite` model."]
    runs = [r for r in rows if "mode" in r]
    if runs:
        same = any(r.get("same_library") for r in rows)
        lines += ["", f"{args.n} JPEGs of {args.side} px; the two libraries checked equal (ids, metadata, "
                  f"thumbnails, files, embeddings within 1e-4): {'yes' if same else 'no'}.", "",
                  "| mode | fixed costs (before the run) | first commit after | whole run (wall) | "
                  "steady rate after the first commit |", "|---|---|---|---|---|"]
        for r in runs:
            fixed = (f"model load {r['model_load_s']} s" if r["mode"] == "local"
                     else f"cluster start {r['cluster_start_s']} s")
            lines.append(f"| {r['mode']} | {fixed} | {r['first_commit_s']} s | {r['wall_s']} s | "
                         f"{r.get('steady_img_s', '-')} img/s |")
    stages = [r for r in rows if "stages" in r]
    if stages:
        lines += ["", "Per-core rates (one process, per CPU-second of it):", "",
                  "| photo long side | decode (img per CPU-s) | embed (img per CPU-s) | embedding ran on |",
                  "|---|---|---|---|"]
        lines += [f"| {r['side']} px | {r['decode_img_per_cpu_s']} | {r['embed_img_per_cpu_s']} | "
                  f"{r['embed_runtime']} |" for r in stages]
    commits = [r for r in rows if r.get("writer")]
    if commits:
        lines += ["", "Driver commits (items then files, 8 kB thumbnails, through the library's Store):", "",
                  "| files per commit | img per CPU-s | img/s wall |", "|---|---|---|"]
        lines += [f"| {r['commits_of']} | {r['img_per_cpu_s']} | {r['img_s_wall']} |" for r in commits]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
