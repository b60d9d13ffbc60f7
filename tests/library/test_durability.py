"""A killed indexer loses nothing committed and the next run completes without duplicates; readers running
beside a writer always see a whole library; a second writer is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from library_helpers import noise_images

from polymodal.errors import LibraryLockedError, NotALibraryError
from polymodal.library import Library


def _start_indexer(folder: Path, lib: Path, batch: int = 8) -> subprocess.Popen:
    env = {**os.environ, "POLYMODAL_MODEL": "lite", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "polymodal", "index", str(folder), "--library", str(lib), "--model", "lite",
         "--batch-size", str(batch)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _snapshot(lib_dir: Path, encoder) -> tuple[int, int] | None:
    """(items, files) of a freshly opened library, after checking the invariants a reader relies on."""
    try:
        lib = Library.open(lib_dir, create=False, model=encoder)
    except NotALibraryError:
        return None
    if lib.store.items() is None:
        return None
    # Files first: they are committed after their items, so items read later cover every file read here.
    files = lib.store.scan(lib.store.files(), ["path", "item_id"]).to_pylist()
    items = lib.store.scan(lib.store.items(), ["id", "paths"]).to_pylist()
    ids = Counter(r["id"] for r in items)
    assert all(n == 1 for n in ids.values()), "an item appears twice"
    paths = Counter(p for r in items for p in r["paths"])
    assert all(n == 1 for n in paths.values()), "a path belongs to two items"
    assert all(r["paths"] for r in items), "an item without a path"
    # Every recorded file points to an item that exists (items are committed before files).
    assert {f["item_id"] for f in files} <= set(ids)
    hits = lib.search("a colourful picture", k=5, floor=False)
    assert len(hits) == min(5, len(items)) and all(h.path for h in hits)
    return len(items), len(files)


def _wait_for(lib_dir: Path, encoder, proc: subprocess.Popen, at_least: int, timeout: float = 50) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = _snapshot(lib_dir, encoder)
        if snap and snap[1] >= at_least:
            return snap
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "indexer exited"
        time.sleep(0.2)
    raise AssertionError("the indexer made no progress")


def _wait_for_files(lib_dir: Path, proc: subprocess.Popen, at_least: int, timeout: float = 90) -> None:
    """Poll cheaply (one row count) so the kill lands mid-run even on a busy machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lib = Library.open(lib_dir, create=False)
            if lib.store.items() is not None and lib.store.files().count_rows() >= at_least:
                return
        except NotALibraryError:
            pass
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "indexer exited"
        time.sleep(0.02)
    raise AssertionError("the indexer made no progress")


def test_ctrl_c_mid_index_records_what_was_committed(tmp_path, lite_encoder):
    folder = tmp_path / "imgs"
    noise_images(folder, 20)
    lib = Library.open(tmp_path / "lib", model=lite_encoder, batch_size=8)

    def progress(done: int, total: int) -> None:
        if done >= 8:
            raise KeyboardInterrupt  # Ctrl-C after the first batch is committed

    with pytest.raises(KeyboardInterrupt):
        lib.add([folder], progress=progress)
    job = lib.status().last_job
    # The job's counts say what it left in the library, not "added 0" beside 8 items.
    assert (job.state, job.counts["added"], lib.status().items) == ("interrupted", 8, 8)
    assert lib.add([folder]).skipped == 8


# A subprocess loading the model on a CPU shared with other jobs can take a while: allow more than the default.
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_index_then_rerun_indexes_every_file_exactly_once(tmp_path, lite_encoder):
    folder = tmp_path / "imgs"
    n = 160
    noise_images(folder, n)
    lib_dir = tmp_path / "lib"
    proc = _start_indexer(folder, lib_dir)
    try:
        _wait_for_files(lib_dir, proc, at_least=24)
        assert proc.poll() is None, "the indexer finished before it could be killed; give it more files"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    items_after_kill, files_after_kill = _snapshot(lib_dir, lite_encoder)
    assert 24 <= files_after_kill < n and items_after_kill >= files_after_kill
    lib = Library.open(lib_dir, model=lite_encoder)
    assert lib.status().last_job.state == "interrupted"
    report = lib.add([folder])
    # Nothing committed before the kill is embedded again; everything else is, once.
    assert report.skipped == files_after_kill
    assert report.added + report.duplicates + report.skipped == n and report.failed == 0
    items, files = _snapshot(lib_dir, lite_encoder)
    assert (items, files) == (n, n)
    rows = lib.store.scan(lib.store.items(), ["paths"]).to_pylist()
    assert sorted(p for r in rows for p in r["paths"]) == sorted(str(p) for p in folder.iterdir())
    assert lib.status().last_job.state == "done"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_reader_sees_a_consistent_library_while_a_writer_commits(tmp_path, lite_encoder):
    folder = tmp_path / "imgs"
    n = 150
    noise_images(folder, n, seed=1)
    lib_dir = tmp_path / "lib"
    proc = _start_indexer(folder, lib_dir, batch=10)
    seen = []
    try:
        _wait_for_files(lib_dir, proc, at_least=10)
        with pytest.raises(LibraryLockedError, match="another polymodal process"):
            Library.open(lib_dir).add([folder])
        while proc.poll() is None:
            snap = _snapshot(lib_dir, lite_encoder)  # asserts the invariants on every read
            if snap:
                seen.append(snap)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    counts = [s[0] for s in seen]
    assert counts == sorted(counts), "a reader saw the library shrink"
    assert len(set(counts)) >= 3, "the reader never caught the writer mid-run"
    assert _snapshot(lib_dir, lite_encoder) == (n, n)


def test_a_long_lived_reader_sees_later_commits(tmp_path, photo_dir, lite_encoder):
    reader = Library.open(tmp_path / "lib", model=lite_encoder)
    writer = Library.open(tmp_path / "lib", model=lite_encoder)
    writer.add([photo_dir / "coffee.png"])
    assert [h.path for h in reader.search("a cat", k=5, floor=False)] == [str(photo_dir / "coffee.png")]
    writer.add([photo_dir / "cat.png"])
    assert reader.search("a cat", k=1, floor=False)[0].path == str(photo_dir / "cat.png")
    assert reader.status().items == 2


# -- every commit is flushed to disk, once --------------------------------------------------------------------

_WRITES = ("commit_items", "upsert", "delete", "build_ann_index")  # each ends with exactly one sync


def _commits(root: Path) -> int:
    """Commits so far: LanceDB writes one manifest per table version; a table's first (its creation, empty) is
    not counted, since the first write to it is what has to reach the disk."""
    tables = list(root.rglob("*.lance"))
    return sum(1 for _ in root.rglob("*.lance/_versions/*.manifest")) - len(tables)


def _sync_problems(tmp_path: Path, encoder, monkeypatch, forget_sync_in: str | None = None) -> list[str]:
    """Index a few files, tag them, remove one and re-index, watching every Store write and every flush.

    A write must flush exactly once before it returns, and nothing may be committed outside a write that
    flushes (the commit count at each write's start and at the end equals the count at the last flush).
    ``forget_sync_in``: a write whose flush is dropped, the positive control."""
    from polymodal.library import store as store_mod

    root = tmp_path / "lib"
    folder = tmp_path / "imgs"
    noise_images(folder, 6, seed=3)
    problems: list[str] = []
    state = {"synced": 0, "syncs": 0, "current": None}
    real_sync = store_mod.sync_to_disk

    def sync_to_disk(path: Path) -> None:
        if state["current"] == forget_sync_in:
            return
        real_sync(path)
        state["syncs"] += 1
        state["synced"] = _commits(root)

    def watched(name: str):
        method = getattr(store_mod.Store, name)

        def wrapper(self, *args, **kwargs):
            if state["current"] is None:  # the outermost write (build_ann_index may call nothing else)
                if _commits(root) != state["synced"]:
                    problems.append(f"before {name}: {_commits(root) - state['synced']} commit(s) never flushed")
                state["current"], before = name, state["syncs"]
                try:
                    return method(self, *args, **kwargs)
                finally:
                    state["current"] = None
                    if state["syncs"] - before != 1:
                        problems.append(f"{name} flushed {state['syncs'] - before} times")
            return method(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(store_mod, "sync_to_disk", sync_to_disk)
    for name in _WRITES:
        monkeypatch.setattr(store_mod.Store, name, watched(name))
    lib = Library.open(root, model=encoder, batch_size=2)
    state["synced"] = _commits(root)
    lib.add([folder])
    lib.tag(["red", "blue"])
    lib.remove([folder / "img_0000.png"])
    lib.add([folder])
    if _commits(root) != state["synced"]:
        problems.append(f"at the end: {_commits(root) - state['synced']} commit(s) never flushed")
    if state["syncs"] < 6:
        problems.append(f"only {state['syncs']} flushes: the run did not exercise the writes")
    return problems


def test_every_commit_is_flushed_to_disk_once(tmp_path, lite_encoder, monkeypatch):
    assert _sync_problems(tmp_path, lite_encoder, monkeypatch) == []


@pytest.mark.parametrize("write", ["commit_items", "upsert"])
def test_the_flush_check_sees_a_forgotten_flush(tmp_path, lite_encoder, monkeypatch, write):
    # Positive control: the same run with one kind of write no longer flushing must be caught.
    problems = _sync_problems(tmp_path, lite_encoder, monkeypatch, forget_sync_in=write)
    assert any(p.startswith(f"{write} flushed 0 times") for p in problems), problems
