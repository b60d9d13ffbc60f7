"""``check`` finds each kind of damage and ``repair`` rebuilds it from the files without losing a good item."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from polymodal.cli import main
from polymodal.library import Library
from polymodal.library.check import check_library, repair_library
from polymodal.library.schema import DB_DIR


def _vectors(lib: Library) -> dict[str, np.ndarray]:
    ids, vecs = lib.store.vectors()
    return dict(zip(ids, vecs))


def _set(lib: Library, item: str, column: str, value) -> None:
    rows = lib.store.items_by("id", [item])
    schema = lib.store.schema()
    col = pa.array([value], type=schema.field(column).type)
    rows = rows.set_column(rows.schema.get_field_index(column), column, col)
    lib.store.commit_items(rows.select(schema.names).cast(schema))


def test_a_clean_library_checks_clean(tmp_path, photo_dir, lite_encoder):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([photo_dir])
    report = check_library(lib.store, verify_files=True)
    assert report.ok and report.findings == [] and (report.items, report.files) == (8, 8)


def test_check_finds_each_damage_and_repair_rebuilds_it(tmp_path, photo_dir, lite_encoder, capsys):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([photo_dir])
    good = _vectors(lib)
    by_name = {Path(h.path).name: h.id for h in (lib.get(p) for p in photo_dir.iterdir())}
    cat, coffee, horse = by_name["cat.png"], by_name["coffee.png"], by_name["horse.png"]
    # (lancedb itself refuses NaN; a vector that is not unit length is what a bad write could leave)
    _set(lib, cat, "vector", (good[cat] * 3).tolist())
    _set(lib, coffee, "thumbnail", b"RIFF not a webp")
    lib.store.delete(lib.store.items_table(), "id", [horse])  # its files row now points nowhere
    lib.store.create_items_table("items_0dead0ff", lib.meta.dim)  # as a killed reindex leaves it

    found = check_library(lib.store)
    kinds = {(f.kind, f.subject) for f in found.findings}
    assert ("bad_vector", cat) in kinds and ("bad_thumbnail", coffee) in kinds
    assert ("dangling_file", str(photo_dir / "horse.png")) in kinds
    assert ("stale_table", "items_0dead0ff") in kinds
    assert not found.ok
    assert main(["check", "--library", str(lib.root)]) == 1
    assert "run `polymodal repair`" in capsys.readouterr().out

    out = repair_library(Library.open(lib.root, model=lite_encoder))
    assert out.tables_dropped == ["items_0dead0ff"] and out.lost == []
    assert out.reembedded == 2 and out.reindexed == 1
    lib = Library.open(lib.root, model=lite_encoder)
    after = check_library(lib.store, verify_files=True)
    assert after.ok and after.findings == [], after.findings
    now = _vectors(lib)
    assert set(now) == set(good)  # nothing lost, the removed item back
    for iid, vec in good.items():
        assert float(now[iid] @ vec) > 0.9999, iid  # rebuilt embeddings equal the originals
    assert lib.get(photo_dir / "horse.png").id == horse
    assert Path(lib.search("a cat", k=1, floor=False)[0].path).name == "cat.png"
    assert lib.thumbnail(coffee)[:4] == b"RIFF" and len(lib.thumbnail(coffee)) > 100


def _newest_manifest(table_dir: Path) -> Path:
    from polymodal.library.check import _manifests

    return _manifests(table_dir)[0]


def test_a_power_loss_mid_commit_is_rolled_back_and_rebuilt(tmp_path, photo_dir, lite_encoder):
    """What a power loss can leave of the commit in flight (lance does not fsync): a zero-length newest manifest
    of ``items`` and a newest ``files`` version whose data file never reached the disk."""
    first, second = sorted(photo_dir.iterdir())[:4], sorted(photo_dir.iterdir())[4:]
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add(first)
    lib.add(second)
    good = _vectors(lib)
    db = lib.root / DB_DIR
    os.truncate(_newest_manifest(db / "items.lance"), 0)
    newest_data = max((db / "files.lance" / "data").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    os.truncate(newest_data, 0)

    fresh = Library.open(lib.root, model=lite_encoder)
    found = check_library(fresh.store)
    assert {f.subject for f in found.findings if f.kind == "unreadable_table"} == {"items", "files"}
    out = repair_library(fresh)
    assert len(out.rolled_back) == 2 and all("set aside" in r for r in out.rolled_back)
    assert out.after.ok and not out.after.findings, out.after.findings
    # The commits in flight are gone, so the files of the second run are unknown again: the next index
    # finds and embeds exactly those, and the library ends as a clean run leaves it.
    lib = Library.open(lib.root, model=lite_encoder)
    assert set(_vectors(lib)) < set(good)
    assert any((lib.root / "quarantine").rglob("*.manifest"))  # set aside, never deleted
    report = lib.add([photo_dir])
    assert report.added == 8 - report.skipped and report.failed == 0
    now = _vectors(lib)
    assert set(now) == set(good)
    assert all(float(now[i] @ good[i]) > 0.9999 for i in good)
    assert (lib.status().items, lib.status().files) == (8, 8)
    assert check_library(lib.store, verify_files=True).findings == []


def test_the_cli_repairs_what_needs_no_model(tmp_path, photo_dir, lite_encoder, capsys):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([photo_dir / "cat.png"])
    lib.store.create_items_table("items_0dead0ff", lib.meta.dim)
    assert main(["check", "--library", str(lib.root), "--json"]) == 0  # stale is not broken
    assert '"stale_table"' in capsys.readouterr().out
    assert main(["repair", "--library", str(lib.root)]) == 0
    out = capsys.readouterr().out
    assert "dropped stale table items_0dead0ff" in out and ": ok" in out
    assert "items_0dead0ff" not in Library.open(lib.root).store._table_names()


def test_a_library_killed_while_being_created_still_opens(tmp_path):
    """A kill between library.json's temporary file and its rename (found by the chaos run) leaves only that
    file; the folder is still a library being created, not a foreign non-empty folder."""
    from polymodal.errors import NotALibraryError

    root = tmp_path / "lib"
    root.mkdir()
    (root / ".library.k1ll3d.json").write_text("{")
    lib = Library.open(root)
    assert lib.meta.model is None and (root / "library.json").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(NotALibraryError, match="not empty"):
        Library.open(other)
