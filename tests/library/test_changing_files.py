"""A file written while it is being indexed is read again, and never stored half-written."""

from __future__ import annotations

import shutil

from library_helpers import photo_sources

import polymodal.library.ingest as ingest
from polymodal.library import Library


def test_a_file_still_being_written_is_read_again_whole(tmp_path, lite_encoder, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    whole = photo_sources()["coffee"].read_bytes()
    target = folder / "coffee.png"
    target.write_bytes(whole[: len(whole) // 2])  # the copy is half done when the scan sees it
    real_read = ingest.read_file
    reads: list[int] = []

    def copy_finishes_during_the_first_read(raw: bytes) -> bytes:
        data = real_read(raw)
        if not reads and raw.endswith(b"coffee.png"):
            target.write_bytes(whole)  # ... and finishes while that half is being read
        reads.append(len(data))
        return data

    monkeypatch.setattr(ingest, "read_file", copy_finishes_during_the_first_read)
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([folder])
    assert report.added == 1 and report.failed == 0
    assert reads == [len(whole) // 2, len(whole)]  # the half was read, then the whole
    stored = lib.get(target)
    assert stored is not None and stored.id == ingest.item_id(ingest.content_hash(whole))  # the whole file's item
    assert lib.status().failures == []


def test_a_file_that_never_holds_still_waits_for_the_next_run(tmp_path, lite_encoder, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    target = folder / "cat.png"
    shutil.copy(photo_sources()["cat"], target)
    real_read = ingest.read_file

    def always_growing(raw: bytes) -> bytes:
        data = real_read(raw)
        with open(raw, "ab") as fh:  # a writer appends on and on
            fh.write(b"\0")
        return data

    monkeypatch.setattr(ingest, "read_file", always_growing)
    monkeypatch.setattr(ingest.time, "sleep", lambda s: None)
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([folder])
    assert report.added == 0 and [f.reason for f in report.failures] == [ingest.CHANGING]
    assert lib.search("a cat", k=5, floor=False) == []  # nothing half-read was stored
    monkeypatch.setattr(ingest, "read_file", real_read)  # the writer is done
    again = lib.add([folder])
    assert again.added == 1 and again.failed == 0 and lib.status().failures == []
