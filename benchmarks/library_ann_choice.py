"""How the library's ANN index type was chosen: build time, latency and recall@10 of LanceDB index types.

Same clustered synthetic vectors as library_store.py; 30 queries; recall against exact search.

    python benchmarks/library_ann_choice.py --n 100000 --types IVF_PQ IVF_FLAT IVF_SQ IVF_HNSW_SQ
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from library_store import clustered, fill

from polymodal.library.schema import LibraryMeta, write_meta
from polymodal.library.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--types", nargs="+", default=["IVF_PQ", "IVF_FLAT", "IVF_SQ", "IVF_HNSW_SQ"])
    args = ap.parse_args()
    n, dim = args.n, args.dim
    rng = np.random.default_rng(n)
    centres = rng.normal(size=(max(8, n // 500), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    root = Path(tempfile.mkdtemp())
    try:
        meta = LibraryMeta(model="synthetic", dim=dim)
        write_meta(root, meta)
        store = Store(root, meta)
        fill(store, n, dim, rng, centres)
        store.optimize(force=True)
        table = store.items()
        queries = clustered(30, dim, rng, centres)

        def search(q: np.ndarray, nprobes: int | None = None, refine: int | None = None) -> list[str]:
            qb = table.search(q).distance_type("cosine")
            qb = qb.bypass_vector_index() if nprobes is None else qb.nprobes(nprobes)
            if refine:
                qb = qb.refine_factor(refine)
            return qb.limit(10).select(["id", "_distance"]).to_arrow().column("id").to_pylist()

        exact = [search(q) for q in queries]
        for index_type in args.types:
            extra = {"num_sub_vectors": dim // 8} if "PQ" in index_type else {}
            t0 = time.perf_counter()
            table.create_index(metric="cosine", vector_column_name="vector", index_type=index_type,
                               num_partitions=int(np.sqrt(n)), replace=True, max_iterations=20, **extra)
            build = time.perf_counter() - t0
            for nprobes in (16, 32, 64):
                for refine in (None, 10):
                    times, recall = [], []
                    for q, e in zip(queries, exact):
                        t1 = time.perf_counter()
                        got = search(q, nprobes, refine)
                        times.append((time.perf_counter() - t1) * 1000)
                        recall.append(len(set(got) & set(e)) / 10)
                    print(f"{index_type} build {build:.1f}s nprobes {nprobes} refine {refine} "
                          f"p50 {np.median(times):.1f}ms recall@10 {np.mean(recall):.3f}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
