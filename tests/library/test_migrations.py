"""Libraries that outlive a version (library/migrations.py), and RAW + JPEG stacks (library/stacks.py).

``tests/fixtures/library-v2`` is a library written by polymodal before schema version 3 (three small photos
indexed with lite, then tagged), kept as it was written: the migration is tested on real old files."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import lance
import pytest
from format_factory import make_dng
from library_helpers import photo_sources
from PIL import Image

from polymodal.errors import LibraryError
from polymodal.library import Library
from polymodal.library import migrations as mig
from polymodal.library.schema import SCHEMA_VERSION

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "library-v2"


@pytest.fixture
def old_library(tmp_path) -> Path:
    root = tmp_path / "library-v2"
    shutil.copytree(FIXTURE, root)
    assert json.loads((root / "library.json").read_text())["schema_version"] == 2
    return root


def _items_columns(root: Path) -> list[str]:
    return lance.dataset(str(root / "db" / "items.lance")).schema.names


def test_an_older_library_is_migrated_in_place_and_backed_up_first(old_library, lite_encoder):
    assert "stack" not in _items_columns(old_library)
    lib = Library.open(old_library, model=lite_encoder)
    assert lib.meta.schema_version == SCHEMA_VERSION == 3
    assert json.loads((old_library / "library.json").read_text())["schema_version"] == 3
    assert "stack" in _items_columns(old_library)
    backup = old_library / mig.BACKUP_DIR
    assert json.loads((backup / "library-v2.json").read_text())["schema_version"] == 2
    assert "items" in json.loads((backup / "tables-v2.json").read_text())
    hits = lib.search("a cat", k=3, floor=False)
    assert Path(hits[0].path).name == "cat.jpg" and hits[0].tags == ("cat",)  # tags survive
    assert lib.status().items == 3


def test_a_failed_migration_leaves_the_library_as_it_was(old_library, lite_encoder, monkeypatch, caplog):
    def half_then_fail(store, meta):
        mig._stack_column(store, meta)  # the column is added ...
        assert "stack" in _items_columns(old_library)  # (positive control: there is something to undo)
        raise OSError("disk full")  # ... and then the step fails

    monkeypatch.setattr(mig, "MIGRATIONS", [*mig.MIGRATIONS[:-1], mig.Migration(3, "test step", half_then_fail)])
    lib = Library.open(old_library, model=lite_encoder)  # still opens: read as it is
    assert "could not be migrated" in caplog.text and "disk full" in caplog.text
    assert json.loads((old_library / "library.json").read_text())["schema_version"] == 2
    assert "stack" not in _items_columns(old_library)  # restored to the saved version
    assert [Path(h.path).name for h in lib.search("a cat", k=1, floor=False)] == ["cat.jpg"]
    with pytest.raises(LibraryError, match="could not be migrated from schema version 2 to 3"):
        lib.add([str(old_library)])  # a writer says why it cannot write


def test_a_reader_beside_a_writer_reads_the_old_schema_and_the_writer_migrates(old_library, lite_encoder, tmp_path):
    fd = os.open(old_library / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process is writing
    try:
        reader = Library.open(old_library, model=lite_encoder)
        assert reader.meta.schema_version == 2 and "stack" not in _items_columns(old_library)
        assert [Path(h.path).name for h in reader.search("a cup of coffee", k=1, floor=False)] == ["coffee.jpg"]
    finally:
        os.close(fd)
    photos = tmp_path / "more"
    photos.mkdir()
    shutil.copy(photo_sources()["rocket"], photos / "rocket.jpg")
    reader.add([photos])  # the first write migrates, under the lock
    assert json.loads((old_library / "library.json").read_text())["schema_version"] == 3
    assert "stack" in _items_columns(old_library)


def test_a_raw_file_and_its_jpeg_are_one_shot_shown_once(tmp_path, lite_encoder):
    shots = tmp_path / "camera"
    shots.mkdir()
    cat = Image.open(photo_sources()["cat"]).convert("RGB").resize((600, 400))
    (shots / "IMG_0001.DNG").write_bytes(make_dng(cat))
    cat.save(shots / "IMG_0001.JPG", quality=92)
    shutil.copy(photo_sources()["coffee"], shots / "coffee.png")
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([shots])
    raw, jpeg = lib.get(shots / "IMG_0001.DNG"), lib.get(shots / "IMG_0001.JPG")
    assert raw is not None and jpeg is not None and raw.id != jpeg.id  # two items, each its own content
    hits = lib.search("a cat", k=3, floor=False)
    names = [Path(h.path).name for h in hits]
    assert names[0] == "IMG_0001.JPG" and "IMG_0001.DNG" not in names  # the shot once, by its JPEG
    only_raw = lib.search("a cat", k=3, floor=False, path="*.DNG")
    assert [Path(h.path).name for h in only_raw] == ["IMG_0001.DNG"]  # still found by its path
    (shots / "IMG_0001.JPG").unlink()  # the pair comes apart: the RAW stands alone again
    lib.add([shots])
    assert "IMG_0001.DNG" in [Path(h.path).name for h in lib.search("a cat", k=3, floor=False)]
