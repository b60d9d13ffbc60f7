"""Library store benchmark: query latency and recall@10 of exact vs ANN search at 10k / 100k / 1M vectors.

Synthetic, clustered unit vectors stand in for embeddings (real CLIP embeddings cluster by subject; uniform
random vectors would be a needlessly hard case for an IVF index). Rows go through the library's own Store
and items schema, so the numbers include LanceDB's real columns and filters.

    python benchmarks/library_store.py --sizes 10000 100000 1000000 --queries 100
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from polymodal.library.schema import LibraryMeta, items_schema, write_meta
from polymodal.library.store import Store


def clustered(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    which = rng.integers(0, len(centres), n)
    x = centres[which] + rng.normal(0, 0.6 / np.sqrt(dim), (n, dim)).astype(np.float32) * np.sqrt(dim) * 0.1
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fill(store: Store, n: int, dim: int, rng: np.random.Generator, centres: np.ndarray, chunk: int = 50_000) -> None:
    import pyarrow as pa

    schema = items_schema(dim)  # float32 rows; a float16 library casts them as the indexer's do (Store.schema)
    now = datetime.now(UTC)
    table = store.items(create=True)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        vec = clustered(m, dim, rng, centres)
        ids = [f"{i:016x}" for i in range(start, start + m)]
        cols = {
            "id": ids, "hash": ids, "kind": ["image"] * m, "paths": [[f"/photos/{i}.jpg"] for i in ids],
            "size": [1000] * m, "mtime": [now] * m, "width": [640] * m, "height": [480] * m, "taken": [None] * m,
            "date": [now] * m, "camera": [None] * m, "latitude": [None] * m, "longitude": [None] * m,
            "orientation": [None] * m, "tags": [[] for _ in range(m)], "thumbnail": [b""] * m, "added": [now] * m,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), dim),
        }
        table.add(pa.table(cols, schema=schema).cast(store.schema()))


def timed(fn, queries) -> tuple[list[float], list]:
    times, results = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(fn(q))
        times.append((time.perf_counter() - t) * 1000)
    return times, results


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p))


def run(n: int, dim: int, n_queries: int, workdir: Path, text_ms: list[float], data: str = "clustered",
        vector_type: str = "float32") -> dict:
    rng = np.random.default_rng(n)
    if data == "uniform":
        # The worst case for an IVF index: no structure at all, neighbours scattered over many partitions.
        centres = np.zeros((1, dim), np.float32)
    else:
        centres = rng.normal(size=(max(8, n // 500), dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    root = workdir / f"lib{n}"
    root.mkdir()
    meta = LibraryMeta(model="synthetic", dim=dim, vector_type=vector_type)
    write_meta(root, meta)
    store = Store(root, meta)
    t0 = time.perf_counter()
    fill(store, n, dim, rng, centres)
    store.optimize()
    fill_s = time.perf_counter() - t0
    queries = clustered(n_queries, dim, rng, centres)

    def ids(table) -> list[str]:
        return table.column("id").to_pylist()

    exact_ms, exact = timed(lambda q: ids(store.vector_search(q, 10, exact=True)), queries)
    t0 = time.perf_counter()
    phases: list[tuple[str, float]] = []
    store.build_ann_index(progress=lambda phase, s: phases.append((phase, round(s, 1))))
    index_s = time.perf_counter() - t0
    print(json.dumps({"n": n, "ann_build_progress": phases}), flush=True)
    ann_ms, ann = timed(lambda q: ids(store.vector_search(q, 10)), queries)
    recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ann, exact)]))
    with_text = [a + t for a, t in zip(ann_ms, text_ms * (len(ann_ms) // len(text_ms) + 1))]
    with_text_exact = [a + t for a, t in zip(exact_ms, text_ms * (len(exact_ms) // len(text_ms) + 1))]
    return {
        "data": data, "n": n, "dim": dim, "vector_type": vector_type, "queries": n_queries, "fill_s": round(fill_s, 1), "index_build_s": round(index_s, 1),
        "exact_p50_ms": round(pct(exact_ms, 50), 1), "exact_p99_ms": round(pct(exact_ms, 99), 1),
        "ann_p50_ms": round(pct(ann_ms, 50), 1), "ann_p99_ms": round(pct(ann_ms, 99), 1),
        "ann_recall@10": round(recall, 3),
        "exact_with_text_p50_ms": round(pct(with_text_exact, 50), 1),
        "exact_with_text_p99_ms": round(pct(with_text_exact, 99), 1),
        "ann_with_text_p50_ms": round(pct(with_text, 50), 1), "ann_with_text_p99_ms": round(pct(with_text, 99), 1),
        "disk_mb": round(sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20, 1),
        "disk_bytes_per_item": round(sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / n),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def text_latency(n: int) -> list[float]:
    """Per-query text embedding time with the offline model (the 'query embedding included' part)."""
    from polymodal.models import load_model

    enc = load_model("lite")
    enc.encode_texts(["warm up"])
    words = ["a cat", "a sunset over the sea", "my friends at the beach", "a red car", "snow in the mountains"]
    times, _ = timed(lambda t: enc.encode_texts([t]), [words[i % len(words)] + f" {i}" for i in range(n)])
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--dim", type=int, default=384, help="384 is lite's width; CLIP ViT-B/32 has 512")
    ap.add_argument("--data", choices=["clustered", "uniform"], default="clustered",
                    help="clustered unit vectors (like real embeddings) or uniform on the sphere (worst case)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build the libraries (default: a temp dir)")
    ap.add_argument("--vector-type", choices=["float32", "float16"], default="float32",
                    help="how the library stores embeddings (float16 halves them)")
    args = ap.parse_args()
    text_ms = text_latency(args.queries)
    print(json.dumps({"text_embedding_p50_ms": round(pct(text_ms, 50), 1),
                      "text_embedding_p99_ms": round(pct(text_ms, 99), 1)}), flush=True)
    workdir = Path(tempfile.mkdtemp(dir=args.workdir))
    try:
        for n in args.sizes:
            print(json.dumps(run(n, args.dim, args.queries, workdir, text_ms, args.data, args.vector_type)), flush=True)
            shutil.rmtree(workdir / f"lib{n}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
