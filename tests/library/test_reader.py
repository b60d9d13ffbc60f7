"""The pylance read path (library/reader.py) against lancedb's: the same hits, filters included, and no lancedb.

Searches of a local library read through pylance so that a new process need not import lancedb (issue
"Instant start"); lancedb still writes. Two readers of one format must agree, so every check here runs the
same query through both and compares ids, order and scores.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from library_helpers import photo_sources

from polymodal.library import Library
from polymodal.library.schema import LibraryMeta, items_schema, read_meta, write_meta
from polymodal.library.search import Filters, run_search
from polymodal.library.store import Store

DIM = 32
N = 600

#: every filter a search can carry, alone and together (exclude_ids and the glob name rows of _synthetic)
FILTERS = [
    Filters(),
    Filters(after=datetime(2018, 1, 1, tzinfo=UTC)),
    Filters(before=datetime(2016, 6, 1, tzinfo=UTC)),
    Filters(after=datetime(2015, 1, 1, tzinfo=UTC), before=datetime(2019, 1, 1, tzinfo=UTC)),
    Filters(kind="video"),
    Filters(tags=("beach",)),
    Filters(tags=("beach", "it's")),  # a quote inside the literal
    Filters(exclude_ids=tuple(f"{i:016x}" for i in range(0, N, 3))),
    Filters(path="/photos/a/*"),
    Filters(path="b/*1.jpg"),
    Filters(min_score=0.2),
    Filters(after=datetime(2014, 1, 1, tzinfo=UTC), kind="image", tags=("beach",), path="*.jpg", min_score=-1.0,
            exclude_ids=(f"{7:016x}",)),
]


def _synthetic(root: Path, n: int = N, vector_type: str = "float32", seed: int = 0) -> tuple[Store, np.ndarray]:
    """A library of ``n`` clustered unit vectors with varied dates, kinds, tags and paths, written by Store."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, DIM))
    vec = centres[rng.integers(0, 12, n)] + rng.normal(0, 0.7, (n, DIM))
    vec = (vec / np.linalg.norm(vec, axis=1, keepdims=True)).astype(np.float32)
    meta = LibraryMeta(model="synthetic", dim=DIM, vector_type=vector_type)
    root.mkdir(parents=True)
    write_meta(root, meta)
    store = Store(root, meta, reader="lancedb")
    store.commit_items(None, new_rows=_rows(range(n), vec))
    return store, vec


def _rows(numbers: range, vec: np.ndarray) -> pa.Table:
    ids = [f"{i:016x}" for i in numbers]
    n = len(ids)
    rows: dict[str, list] = {name: [None] * n for name in items_schema(DIM).names}
    rows |= {
        "id": ids, "hash": ids,
        "kind": ["video" if i % 5 == 0 else "image" for i in numbers],
        "paths": [[f"/photos/{'ab'[i % 2]}/{i:04d}.{'jpg' if i % 3 else 'png'}"] for i in numbers],
        "tags": [["beach", "it's"] if i % 4 == 0 else ["beach"] if i % 4 == 1 else [] for i in numbers],
        "date": [datetime(2012 + i % 10, 1 + i % 12, 1 + i % 28, i % 24, tzinfo=UTC) for i in numbers],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), DIM),
    }
    return pa.table(rows, schema=items_schema(DIM))


def _readers(root: Path) -> tuple[Store, Store]:
    meta = read_meta(root)
    return Store(root, meta), Store(root, meta, reader="lancedb")


def _same_hits(a: list, b: list) -> None:
    assert [h.id for h in a] == [h.id for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-6)
    for x, y in zip(a, b):
        assert {**x.to_dict(), "score": 0} == {**y.to_dict(), "score": 0}


def _same_results(lance_store: Store, lancedb_store: Store, queries: np.ndarray, exact: bool) -> None:
    for q in queries:
        for f in FILTERS:
            got = run_search(lance_store, q, 10, f, exact=exact)
            want = run_search(lancedb_store, q, 10, f, exact=exact)
            assert want, f  # every filter above matches something: an empty comparison proves nothing
            _same_hits(got, want)
        a = lance_store.vector_search(q, 25, where="kind = 'image'", exact=exact)
        b = lancedb_store.vector_search(q, 25, where="kind = 'image'", exact=exact)
        assert a.schema == b.schema
        assert a.column("id").to_pylist() == b.column("id").to_pylist()
        np.testing.assert_allclose(a.column("_distance").to_numpy(), b.column("_distance").to_numpy(), atol=1e-6)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """The same rows twice: without an ANN index, and with one (IVF-SQ, as past ``ANN_THRESHOLD``)."""
    base = tmp_path_factory.mktemp("reader")
    _, vec = _synthetic(base / "plain")
    shutil.copytree(base / "plain", base / "indexed")
    Store(base / "indexed", read_meta(base / "indexed"), reader="lancedb").build_ann_index()
    return base / "plain", base / "indexed", vec


def _queries(vec: np.ndarray) -> np.ndarray:
    q = vec[:4] + np.random.default_rng(1).normal(0, 0.1, (4, DIM)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_both_readers_return_the_same_hits_without_an_index(synthetic):
    plain, _, vec = synthetic
    lance_store, lancedb_store = _readers(plain)
    assert lance_store.reader is not None and lancedb_store.reader is None
    assert not lance_store.has_ann_index() and not lancedb_store.has_ann_index()
    _same_results(lance_store, lancedb_store, _queries(vec), exact=False)


def test_both_readers_return_the_same_hits_through_the_ann_index(synthetic):
    _, indexed, vec = synthetic
    lance_store, lancedb_store = _readers(indexed)
    assert lance_store.has_ann_index() and lancedb_store.has_ann_index()
    for exact in (False, True):  # nprobes/refine_factor through the index, and bypassing it
        _same_results(lance_store, lancedb_store, _queries(vec), exact=exact)


def test_both_readers_agree_on_counts_vectors_and_scans(synthetic):
    plain, _, vec = synthetic
    lance_store, lancedb_store = _readers(plain)
    assert lance_store.count_items() == lancedb_store.count_items() == N
    assert lance_store._table_names() == lancedb_store._table_names() == {"items"}
    ids_a, vec_a = lance_store.vectors()
    ids_b, vec_b = lancedb_store.vectors()
    assert ids_a == ids_b and np.array_equal(vec_a, vec_b)
    np.testing.assert_array_equal(vec_a, vec)
    asked = [f"{i:016x}" for i in (5, 3, 999_999, 1)]  # in the order asked, unknown ones dropped
    assert lance_store.vectors(asked)[0] == lancedb_store.vectors(asked)[0] == asked[:2] + asked[3:]
    for where in (None, "kind = 'video'", "array_has(tags, 'it''s')", "date < TIMESTAMP '2014-01-01 00:00:00+00:00'"):
        for columns in (None, ["id", "paths", "date"]):
            a = lance_store.scan(lance_store.items(), columns, where)
            b = lancedb_store.scan(lancedb_store.items(), columns, where)
            assert a.equals(b), (where, columns)
            assert lance_store.items().count_rows(where) == lancedb_store.items().count_rows(where) == a.num_rows


def test_both_readers_agree_on_a_float16_library(tmp_path):
    _, vec = _synthetic(tmp_path / "lib", n=200, vector_type="float16")
    lance_store, lancedb_store = _readers(tmp_path / "lib")
    _same_results(lance_store, lancedb_store, _queries(vec)[:2], exact=True)
    assert np.array_equal(lance_store.vectors()[1], lancedb_store.vectors()[1])


def test_a_reader_sees_a_commit_made_after_it_opened(tmp_path):
    _synthetic(tmp_path / "lib", n=50)
    meta = read_meta(tmp_path / "lib")
    reader = Store(tmp_path / "lib", meta)  # the server's: opened once, read many times
    assert reader.count_items() == 50
    assert reader.items() is not None and not reader.has_ann_index()
    # Another process's writer adds an item pointing exactly where the query will point.
    target = np.random.default_rng(5).normal(size=DIM).astype(np.float32)
    target /= np.linalg.norm(target)
    Store(tmp_path / "lib", meta, reader="lancedb").commit_items(None, new_rows=_rows(range(50, 51), target[None]))
    assert reader.count_items() == 51
    hit = run_search(reader, target, 1, Filters())[0]
    assert hit.id == f"{50:016x}" and hit.score == pytest.approx(1.0, abs=1e-6)
    # and a table created after it opened (the index of another process, too)
    assert reader.table("files") is None
    Store(tmp_path / "lib", meta, reader="lancedb").files()
    assert reader.table("files") is not None and reader.files().count_rows() == 0


def test_a_library_reads_through_pylance_and_writes_through_lancedb(tmp_path):
    store, _ = _synthetic(tmp_path / "lib", n=20)
    lance_store = Store(tmp_path / "lib", store.meta)
    table = lance_store.items()
    assert table is not None
    table.delete("id = '0000000000000001'")  # anything not a read is lancedb's table's
    assert store.count_items() == lance_store.count_items() == 19
    with pytest.raises(ValueError, match="unknown reader"):
        Store(tmp_path / "lib", store.meta, reader="duckdb")


def test_pylance_is_the_version_lancedb_is_tested_with():
    # lancedb pins the pylance its own test suite runs against; reading with another risks a format the two
    # disagree on (pyproject pins pylance to this version).
    pins = [r for r in importlib.metadata.requires("lancedb") or () if r.startswith("pylance==") and "tests" in r]
    assert pins, "lancedb no longer pins pylance for its tests: check the two still agree, then update this test"
    assert importlib.metadata.version("pylance") == pins[0].split(";")[0].split("==")[1].strip()


# -- a real library --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos_library(tmp_path_factory, lite_encoder) -> tuple[Library, Path]:
    """The eight photos, indexed with the offline model; mtimes (their dates) in 2019, 2021 and 2023; tagged."""
    root = tmp_path_factory.mktemp("reader-photos")
    photos = root / "photos"
    for i, (name, src) in enumerate(sorted(photo_sources().items())):
        sub = photos / ("2019", "2021", "2023")[i % 3]
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, sub / f"{name}{src.suffix}")
        t = datetime(int(sub.name), 6, 1 + i, tzinfo=UTC).timestamp()
        os.utime(sub / f"{name}{src.suffix}", (t, t))
    lib = Library.open(root / "lib", model=lite_encoder)
    lib.add([photos])
    lib.tag(["cat", "coffee", "rocket", "motorcycle", "horse", "flower"])
    return lib, photos


SEARCHES = [
    {}, {"after": "2021"}, {"before": "2021"}, {"after": "2020", "before": "2022"}, {"kind": "image"},
    {"tags": ["cat"]}, {"path": "2019/*"}, {"path": "*.png"}, {"min_score": 0.1}, {"sort": "date"},
]


@pytest.mark.parametrize("options", SEARCHES, ids=[json.dumps(s) for s in SEARCHES])
def test_a_real_library_searches_the_same_through_both_readers(photos_library, options):
    lib, photos = photos_library
    assert lib.store.reader is not None
    got = lib.search("an animal", k=5, **options, floor=False)
    assert got
    via_lancedb = Library.open(lib.root, model=lib.encoder())
    via_lancedb.store = Store(lib.root, lib.meta, reader="lancedb")
    _same_hits(got, via_lancedb.search("an animal", k=5, **options, floor=False))
    cat = lib.get(next(photos.rglob("cat.png")))
    assert cat is not None
    similar = lib.similar(cat.id, k=4, **{k: v for k, v in options.items() if k != "sort"})
    assert cat.id not in {h.id for h in similar}  # exclude_ids: the item itself
    _same_hits(similar, via_lancedb.similar(cat.id, k=4, **{k: v for k, v in options.items() if k != "sort"}))


def test_a_real_library_reports_the_same_status_through_both_readers(photos_library, lite_encoder):
    lib, _ = photos_library
    via_lancedb = Library.open(lib.root, model=lite_encoder)  # the same loaded model: the same runtimes
    via_lancedb.store = Store(lib.root, lib.meta, reader="lancedb")
    assert lib.status() == via_lancedb.status()


_SEARCH_SCRIPT = """
import json, sys
from polymodal.library import Library
from polymodal.library.store import Store
lib = Library.open(sys.argv[1], create=False)
if sys.argv[2] == "lancedb":
    lib.store = Store(lib.root, lib.meta, reader="lancedb")
hits = lib.search("a cat", k=3, after="2010", kind="image", floor=False)
similar = lib.similar(hits[0].id, k=2)
status = lib.status()
print(json.dumps({"hits": [h.id for h in hits], "similar": [h.id for h in similar], "items": status.items,
                  "lancedb": "lancedb" in sys.modules}))
"""


def _search_in_a_new_process(root: Path, reader: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _SEARCH_SCRIPT, str(root), reader], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "POLYMODAL_MODEL": "lite"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_search_in_a_new_process_never_imports_lancedb(photos_library):
    lib, _ = photos_library
    fast = _search_in_a_new_process(lib.root, "lance")
    assert fast["lancedb"] is False and fast["items"] == 8
    # The control: the same script reading through lancedb does import it, so the check above can see it.
    slow = _search_in_a_new_process(lib.root, "lancedb")
    assert slow["lancedb"] is True
    assert fast == {**slow, "lancedb": False}
