"""``check`` and ``repair`` of a library's video side: segment and media rows are checked against their items,
and a broken video is rebuilt by indexing its file again without touching a good item or segment."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from library_helpers import photo_sources

from media_factory import Scene, make_audio, make_video
from polymodal.cli import main
from polymodal.library import Library, segments
from polymodal.library.check import _manifests, check_library, repair_library
from polymodal.library.schema import DB_DIR
from polymodal.library.segments import VISUAL, SegmentRow, segments_schema
from polymodal.library.store import sql_str

#: three short videos of two shots each (a cut at 2 s), so each has at least two visual segments
VIDEOS = {"cat_coffee.mp4": ("cat", "coffee"), "rocket_horse.mp4": ("rocket", "horse"),
          "astronaut_motorbike.mp4": ("astronaut", "motorbike")}
ORPHAN = "0123456789abcdef"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, lite_encoder) -> Path:
    """Two photos and the three videos, indexed once; each test works on its own copy of the library."""
    media = tmp_path_factory.mktemp("check-media")
    for name in ("cat", "horse"):
        shutil.copy(photo_sources()[name], media / f"{name}.png")
    for name, (first, second) in VIDEOS.items():
        make_video(media / name, [Scene(first, 2), Scene(second, 2)], size=(160, 120), fps=10)
    root = tmp_path_factory.mktemp("check-media-lib") / "lib"
    lib = Library.open(root, model=lite_encoder)
    report = lib.add([media])
    assert (report.added, report.failed) == (5, 0), report.failures
    for iid in _videos(lib).values():
        assert len(segments.of_items(lib.store, [iid], VISUAL)) >= 2
    return root


@pytest.fixture
def lib(pristine: Path, tmp_path: Path, lite_encoder) -> Library:
    shutil.copytree(pristine, tmp_path / "lib")
    return Library.open(tmp_path / "lib", model=lite_encoder)


def _videos(lib: Library) -> dict[str, str]:
    rows = lib.store.scan(lib.store.items(), ["id", "kind", "paths"]).to_pylist()
    return {Path(r["paths"][0]).name: r["id"] for r in rows if r["kind"] == "video"}


def _snapshot(lib: Library) -> tuple[dict[str, tuple], dict[str, np.ndarray]]:
    """Each item's (added, vector), and each segment's vector: ``added`` changes when a row is written again."""
    items = lib.store.scan(lib.store.items(), ["id", "added", "vector"]).to_pylist()
    segs = lib.store.scan(segments.segments_table(lib.store), ["key", "vector"]).to_pylist()
    return ({r["id"]: (r["added"], np.asarray(r["vector"], np.float32)) for r in items},
            {r["key"]: np.asarray(r["vector"], np.float32) for r in segs})


def _set_segment(lib: Library, key: str, column: str, value) -> None:
    table = segments.segments_table(lib.store)
    rows = lib.store.scan(table, None, f"key = {sql_str(key)}")
    col = pa.array([value], type=segments_schema(lib.meta.dim).field(column).type)
    lib.store.upsert(table, "key", rows.set_column(rows.schema.get_field_index(column), column, col))


def _assert_only_rebuilt(before: tuple, after: tuple, rebuilt: set[str]) -> None:
    """Every item and segment is back; those of ``rebuilt`` items equal the originals, all others untouched."""
    (items, segs), (items_now, segs_now) = before, after
    assert set(items_now) == set(items) and set(segs_now) == set(segs)
    for iid, (added, vec) in items.items():
        if iid in rebuilt:
            assert items_now[iid][0] != added and float(items_now[iid][1] @ vec) > 0.9999, iid
        else:
            assert items_now[iid][0] == added and np.array_equal(items_now[iid][1], vec), iid
    for key, vec in segs.items():
        if key.partition(":")[0] in rebuilt:
            assert float(segs_now[key] @ vec) > 0.9999, key
        else:
            assert np.array_equal(segs_now[key], vec), key


def test_a_library_with_videos_checks_clean(lib, capsys):
    report = check_library(lib.store, verify_files=True)
    assert report.ok and report.findings == [], report.findings
    assert (report.items, report.files) == (5, 5) and report.segments == segments.count(lib.store) >= 6
    assert main(["check", "--library", str(lib.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["segments"] == report.segments


def test_check_finds_broken_segments_and_repair_rebuilds_only_those(lib, lite_encoder):
    before = _snapshot(lib)
    videos = _videos(lib)
    a, b = videos["cat_coffee.mp4"], videos["rocket_horse.mp4"]
    _set_segment(lib, f"{a}:v0000", "vector", (before[1][f"{a}:v0000"] * 3).tolist())
    _set_segment(lib, f"{a}:v0001", "thumbnail", b"RIFF not a webp")
    lib.store.delete(segments.segments_table(lib.store), "key", [f"{b}:v0000"])
    # what a run killed between a new video's segments and its item leaves
    unit = np.full(lib.meta.dim, lib.meta.dim ** -0.5, np.float32)
    segments.write(lib.store, ORPHAN, [SegmentRow("v0000", VISUAL, 0.0, 1.0, unit)], {"kind": "video", "duration": 1.0})

    found = check_library(lib.store)
    assert {(f.kind, f.subject) for f in found.findings} == {
        ("bad_segment_vector", f"{a}:v0000"), ("bad_segment_thumbnail", f"{a}:v0001"), ("segment_gap", b),
        ("orphan_segment", ORPHAN), ("orphan_media", ORPHAN)}, found.findings
    assert all(f.severity == "error" for f in found.findings)
    # While a writer runs, rows of an item not committed yet (or of one just removed) are expected.
    racing = check_library(lib.store, writer=True)
    assert {f.kind for f in racing.errors} == {"bad_segment_vector", "bad_segment_thumbnail", "segment_gap"}

    out = repair_library(Library.open(lib.root, model=lite_encoder))
    assert (out.reindexed, out.orphans_dropped, out.lost) == (2, 1, [])
    assert out.after.ok and out.after.findings == [], out.after.findings
    lib = Library.open(lib.root, model=lite_encoder)
    _assert_only_rebuilt(before, _snapshot(lib), {a, b})
    assert check_library(lib.store, verify_files=True).findings == []


@pytest.mark.parametrize("versions", ["newest", "all"])
def test_an_unreadable_segments_table_is_rolled_back_and_rebuilt(lib, lite_encoder, versions):
    """A power loss mid-commit (see test_hardening_check): the newest version, or every one, does not read."""
    before = _snapshot(lib)
    table_dir = lib.root / DB_DIR / f"{segments.segments_table_name(lib.store)}.lance"
    for manifest in _manifests(table_dir)[: None if versions == "all" else 1]:
        os.truncate(manifest, 0)

    fresh = Library.open(lib.root, model=lite_encoder)
    found = check_library(fresh.store)
    assert [(f.kind, f.subject) for f in found.findings] == [("unreadable_table", "segments")]
    out = repair_library(fresh)
    assert len(out.rolled_back) == 1 and out.lost == []
    assert out.after.ok and out.after.findings == [], out.after.findings
    after = _snapshot(Library.open(lib.root, model=lite_encoder))
    # The videos whose segments were lost with the version(s) set aside, and only those, are indexed again.
    rebuilt = {iid for iid, (added, _) in after[0].items() if added != before[0][iid][0]}
    videos = set(_videos(fresh).values())
    if versions == "all":
        assert rebuilt == videos
    else:
        assert len(rebuilt) == 1 and rebuilt < videos
    _assert_only_rebuilt(before, after, rebuilt)


def test_removing_an_audio_file_without_speech_leaves_no_media_row(tmp_path, lite_encoder):
    """Its media row is its only row beside the item (no speech, no segments): removal must prune it too."""
    folder = tmp_path / "sounds"
    folder.mkdir()
    make_audio(folder / "hum.wav", np.zeros(16_000, np.float32))
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    assert lib.add([folder]).added == 1 and segments.count(lib.store) == 0
    assert check_library(lib.store).findings == []
    (folder / "hum.wav").unlink()
    assert lib.add([folder]).removed == 1
    assert check_library(lib.store).findings == []
