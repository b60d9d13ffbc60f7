"""Past a size, searches go through an ANN index with exact re-ranking and stay close to exact search."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from library_helpers import noise_images, photo_sources

from polymodal.library import Library
from polymodal.library.schema import LibraryMeta, items_schema, write_meta
from polymodal.library.store import Store


def _synthetic_store(tmp_path, n: int, dim: int = 64) -> tuple[Store, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, dim))
    vec = centres[rng.integers(0, 20, n)] + rng.normal(0, 0.8, (n, dim))
    vec = (vec / np.linalg.norm(vec, axis=1, keepdims=True)).astype(np.float32)
    meta = LibraryMeta(model="synthetic", dim=dim)
    tmp_path.mkdir(exist_ok=True)
    write_meta(tmp_path, meta)
    store = Store(tmp_path, meta)
    ids = [f"{i:016x}" for i in range(n)]
    now = datetime.now(UTC)
    rows = {name: [None] * n for name in items_schema(dim).names}
    rows |= {"id": ids, "hash": ids, "kind": ["image"] * n, "paths": [[f"/p/{i}"] for i in ids], "tags": [[]] * n,
             "date": [now] * n, "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), dim)}
    store.items(create=True).add(pa.table(rows, schema=items_schema(dim)))
    return store, vec


def test_ann_index_recall_and_exact_scores(tmp_path):
    store, vec = _synthetic_store(tmp_path / "lib", 4000)
    queries = vec[:20] + np.random.default_rng(1).normal(0, 0.05, (20, vec.shape[1])).astype(np.float32)
    exact = [store.vector_search(q, 10, exact=True) for q in queries]
    assert not store.has_ann_index()
    store.build_ann_index()
    assert store.has_ann_index()
    approx = [store.vector_search(q, 10) for q in queries]
    recall = np.mean([len(set(a.column("id").to_pylist()) & set(e.column("id").to_pylist())) / 10
                      for a, e in zip(approx, exact)])
    assert recall >= 0.95
    # Re-ranking on the full vectors: a hit's score is its exact cosine similarity, not a quantised guess.
    for q, a in zip(queries, approx):
        idx = [int(i, 16) for i in a.column("id").to_pylist()]
        expect = vec[idx] @ (q / np.linalg.norm(q))
        np.testing.assert_allclose(1 - np.array(a.column("_distance").to_pylist()), expect, atol=1e-4)


@pytest.mark.slow
def test_library_builds_the_index_past_its_threshold_and_keeps_finding_new_items(tmp_path, lite_encoder):
    folder = tmp_path / "imgs"
    noise_images(folder, 300)
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.ann_threshold = 256
    report = lib.add([folder])
    assert report.index_built and lib.status().ann_index
    top_ann = [h.id for h in lib.search("a colourful pattern", k=5, floor=False)]
    top_exact = [h.id for h in lib.search("a colourful pattern", k=5, exact=True, floor=False)]
    assert len(set(top_ann) & set(top_exact)) >= 4
    # Items added after the index was built are found too (LanceDB searches unindexed rows exactly, and
    # optimize() folds them into the index).
    shutil.copy(photo_sources()["cat"], folder / "cat.png")
    report = lib.add([folder])
    assert report.added == 1 and not report.index_built
    assert lib.search("a cat", k=1, floor=False)[0].path.endswith("cat.png")
