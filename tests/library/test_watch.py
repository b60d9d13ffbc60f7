"""Live folders (``index --watch``, library/watch.py): real file events on a real folder, the offline model,
LanceDB on disk. The watcher runs in a thread with its own Library object; the test reads through another,
as a search in a second process would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from library_helpers import photo_sources

from polymodal.library import Library
from polymodal.library.watch import WatchBatch, watch

WAIT = 30.0  # a functional bound; the 2-second goal is measured in benchmarks/watch_latency.py


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {WAIT} s: {what}")


@pytest.fixture
def watched(tmp_path, lite_encoder) -> Iterator[tuple[Path, Library, list[WatchBatch], threading.Event]]:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photo_sources()["coffee"], folder / "coffee.png")
    writer = Library.open(tmp_path / "lib", model=lite_encoder)
    batches: list[WatchBatch] = []
    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(writer, [folder]), kwargs={"stop": stop, "on_batch": batches.append},
                              daemon=True)
    thread.start()
    _until(lambda: len(batches) >= 1, "the first pass")
    reader = Library.open(tmp_path / "lib", model=lite_encoder)
    yield folder, reader, batches, stop
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the watcher did not stop when asked"


def _paths(lib: Library) -> set[str]:
    return {Path(p).name for h in lib.search("a photo", k=1000, floor=False) for p in h.paths}


def test_new_moved_and_deleted_files_follow_the_folder(watched):
    folder, lib, batches, _ = watched
    assert _paths(lib) == {"coffee.png"}
    shutil.copy(photo_sources()["cat"], folder / "cat.png")
    _until(lambda: "cat.png" in _paths(lib), "a new photo is searchable")
    assert lib.tag(["cat", "coffee"]) >= 1  # a writer beside the watcher: the lock is free between its passes
    cat = lib.get(folder / "cat.png")
    assert cat is not None and cat.tags == ("cat",)
    (folder / "sub").mkdir()
    (folder / "cat.png").rename(folder / "sub" / "kitty.png")
    _until(lambda: "kitty.png" in _paths(lib) and "cat.png" not in _paths(lib), "a moved photo follows")
    moved = lib.get(folder / "sub" / "kitty.png")
    assert moved is not None and moved.id == cat.id and moved.tags == ("cat",)  # same item, tags kept
    (folder / "coffee.png").unlink()
    _until(lambda: _paths(lib) == {"kitty.png"}, "a deleted photo disappears")
    assert all(b.seconds < WAIT for b in batches)


def test_a_file_being_copied_is_read_once_complete_never_as_broken(watched):
    folder, lib, _, _ = watched
    data = photo_sources()["rocket"].read_bytes()
    with open(folder / "rocket.jpg", "wb") as fh:  # a slow copy: half, a pause, the rest
        fh.write(data[: len(data) // 2])
        fh.flush()
        time.sleep(0.25)
        fh.write(data[len(data) // 2:])
    _until(lambda: "rocket.jpg" in _paths(lib), "the copied photo is indexed")
    assert not [f for f in lib.failures() if f.path.endswith("rocket.jpg")]


def test_a_burst_of_files_is_indexed_in_a_few_batches(watched):
    folder, lib, batches, _ = watched
    before = len(batches)
    src = photo_sources()["flower"]
    from PIL import Image

    base = Image.open(src).convert("RGB").resize((96, 64))
    for i in range(120):  # distinct contents: each its own item
        base.putpixel((i % 96, i // 96), (i, 255 - i, 7))
        base.save(folder / f"burst-{i:03d}.jpg", quality=90)
    _until(lambda: sum(1 for n in _paths(lib) if n.startswith("burst-")) == 120, "all 120 files are indexed")
    assert len(batches) - before <= 10  # batched, not a pass per file


def test_a_folder_that_goes_away_keeps_its_items_and_is_watched_for(watched, caplog):
    folder, lib, _, _ = watched
    aside = folder.with_name("unplugged")
    folder.rename(aside)
    _until(lambda: "is gone" in caplog.text, "the watcher says the folder is gone")
    assert _paths(lib) == {"coffee.png"}  # nothing pruned while the folder is away
    aside.rename(folder)
    _until(lambda: "is back" in caplog.text, "the watcher sees it back")
    shutil.copy(photo_sources()["cat"], folder / "cat.png")
    _until(lambda: "cat.png" in _paths(lib), "it is watched again")


def test_after_kill_9_the_next_watch_catches_up(tmp_path, lite_encoder):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photo_sources()["coffee"], folder / "coffee.png")
    lib_dir = tmp_path / "lib"
    env = {**os.environ, "POLYMODAL_CACHE_DIR": str(lite_encoder.folder.parents[2])}  # the session's export
    cmd = [sys.executable, "-m", "polymodal", "index", str(folder), "--library", str(lib_dir), "--model", "lite",
           "--no-speech", "--watch", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # the first pass is done
    assert first["added"] == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    shutil.copy(photo_sources()["cat"], folder / "cat.png")  # while no one watches
    again = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert again.stdout is not None
    try:
        catch_up = json.loads(again.stdout.readline())
        assert catch_up["added"] == 1 and catch_up["skipped"] == 1
    finally:
        again.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly
        _, err = again.communicate(timeout=30)
    assert again.returncode == 130 and "interrupted" in err and "Traceback" not in err
