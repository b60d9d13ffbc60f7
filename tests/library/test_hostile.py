"""Bad input: every broken file becomes a recorded failure with its reason, and the rest of the job completes."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from polymodal.errors import InputError, NotALibraryError
from polymodal.library import Library


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header announcing width x height pixels, with one tiny IDAT: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
def hostile_dir(tmp_path: Path, photo_dir: Path) -> Path:
    d = tmp_path / "hostile"
    d.mkdir()
    shutil.copy(photo_dir / "cat.png", d / "good_cat.png")
    shutil.copy(photo_dir / "coffee.png", d / "good_coffee.png")
    (d / "zero.jpg").write_bytes(b"")
    rocket = (photo_dir / "rocket.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(rocket[: len(rocket) // 2])
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    (d / "notes.jpg").write_text("this is a text file, not a photo\n")
    (d / "bomb.png").write_bytes(_png_claiming(30_000, 30_000))
    shutil.copy(photo_dir / "horse.png", d / "locked.png")
    os.chmod(d / "locked.png", 0)
    os.symlink(d / "nowhere.jpg", d / "broken_link.jpg")
    os.symlink(d / "loop_b.jpg", d / "loop_a.jpg")
    os.symlink(d / "loop_a.jpg", d / "loop_b.jpg")
    (d / "sub").mkdir()
    shutil.copy(photo_dir / "flower.jpg", d / "sub" / "flower.jpg")
    os.symlink(d, d / "sub" / "back_up")  # a directory loop
    shutil.copy(photo_dir / "motorbike.png", os.fsencode(d) + b"/moto_\xe9\xff.png")  # not UTF-8
    return d


@pytest.fixture
def locked_is_unreadable(hostile_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 000 stops every user but root; as root, the read is made to fail the way the kernel would."""
    if os.geteuid() != 0:
        return
    import polymodal.library.ingest as ingest

    real = ingest.read_file

    def read_file(raw: bytes) -> bytes:
        if raw.endswith(b"locked.png"):
            raise PermissionError(13, "Permission denied", os.fsdecode(raw))
        return real(raw)

    monkeypatch.setattr(ingest, "read_file", read_file)


def test_hostile_files_are_recorded_and_the_rest_indexed(tmp_path, hostile_dir, lite_encoder, locked_is_unreadable):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([hostile_dir])
    reasons = {Path(f.path).name: f.reason for f in lib.failures()}
    assert "empty" in reasons["zero.jpg"]
    assert "truncated" in reasons["truncated.jpg"] or "corrupt" in reasons["truncated.jpg"]
    assert "not a recognised image" in reasons["corrupt.png"] or "corrupt" in reasons["corrupt.png"]
    assert "not a recognised image format" in reasons["notes.jpg"]
    assert "decompression bomb" in reasons["bomb.png"]
    assert reasons["locked.png"] == "permission denied"
    assert "broken symlink" in reasons["broken_link.jpg"]
    assert reasons["loop_a.jpg"] == reasons["loop_b.jpg"] == "symlink loop"
    assert "symlink loop" in reasons["back_up"]
    assert report.failed == len(reasons) == 10
    # The good files, including one whose name is not UTF-8, are all in.
    assert (report.added, lib.status().items) == (4, 4)
    moto = [h for h in lib.search("a motorbike", k=1)]
    assert moto[0].path.endswith("moto_\\xe9\\xff.png")
    assert Path(lib.search("a cat", k=1)[0].path).name == "good_cat.png"
    assert Path(lib.search("flowers", k=1)[0].path).name == "flower.jpg"  # found once, not via the loop
    assert lib.status().files == 4


def test_failures_are_not_retried_until_the_file_changes(tmp_path, hostile_dir, photo_dir, lite_encoder,
                                                         locked_is_unreadable):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([hostile_dir])
    again = lib.add([hostile_dir])
    assert again.added == 0 and again.skipped == 4 and again.failed == 10
    shutil.copy(photo_dir / "rocket.jpg", hostile_dir / "zero.jpg")  # the file is fixed
    fixed = lib.add([hostile_dir])
    assert fixed.added == 1
    assert "zero.jpg" not in {Path(f.path).name for f in lib.failures()}
    (hostile_dir / "notes.jpg").unlink()  # a failed file that is deleted leaves the failure list
    lib.add([hostile_dir])
    assert "notes.jpg" not in {Path(f.path).name for f in lib.failures()}


def test_a_dangling_symlink_out_of_the_folder_is_reported_as_broken(tmp_path, photo_dir):
    from polymodal.library.scan import image_extensions, walk

    d = tmp_path / "links"
    d.mkdir()
    os.symlink(tmp_path / "deleted" / "gone.jpg", d / "dangling.jpg")  # target outside the folder, missing
    os.symlink(photo_dir / "cat.png", d / "outside.png")  # target outside the folder, present
    reasons = {Path(p.path).name: p.reason for p in walk([os.fsencode(d)], image_extensions()).problems}
    # Not "outside the indexed folders: not followed", which sends the user looking for the wrong fix.
    assert reasons["dangling.jpg"] == "broken symlink (target does not exist)"
    assert "outside the indexed folders" in reasons["outside.png"]


def test_a_missing_path_is_a_clear_error_before_anything_is_written(tmp_path, photo_dir, lite_encoder):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    with pytest.raises(InputError, match="no such file or directory") as err:
        lib.add([photo_dir, tmp_path / "does-not-exist"])
    assert str(tmp_path / "does-not-exist") in str(err.value)
    assert lib.status().items == 0
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(InputError, match="broken symlink"):
        lib.add([tmp_path / "dangling"])


def test_a_directory_that_is_not_a_library_is_refused(tmp_path, photo_dir):
    with pytest.raises(NotALibraryError, match="not a polymodal library"):
        Library.open(photo_dir)  # a folder of photos, not a library: never written into
    assert sorted(p.name for p in photo_dir.iterdir()) == sorted(
        ["cat.png", "coffee.png", "rocket.jpg", "motorbike.png", "astronaut.png", "horse.png", "flower.jpg",
         "china.jpg"])
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotALibraryError, match="it is a file"):
        Library.open(tmp_path / "afile")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "library.json").write_text("{not json")
    with pytest.raises(NotALibraryError, match=r"cannot read library\.json"):
        Library.open(bad)
    with pytest.raises(NotALibraryError, match="no library at"):
        Library.open(tmp_path / "nothing-here", create=False)


def test_the_library_inside_a_scanned_folder_is_not_indexed(tmp_path, photo_dir, lite_encoder):
    lib = Library.open(photo_dir / "mylib", model=lite_encoder)
    lib.add([photo_dir])
    lib.add([photo_dir])
    assert lib.status().items == 8 and not lib.failures()


def test_an_unexpected_decoder_crash_is_recorded_not_fatal(tmp_path, photo_dir, lite_encoder, monkeypatch):
    import polymodal.library.ingest as ingest

    real = ingest.make_thumbnail

    def flaky(image):
        if image.size[0] == 400:  # horse.png, 400 x 328
            raise ValueError("codec exploded")
        return real(image)

    monkeypatch.setattr(ingest, "make_thumbnail", flaky)
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([photo_dir])
    assert (report.added, report.failed) == (7, 1)
    assert lib.failures()[0].reason == "cannot process it: ValueError: codec exploded"


def test_a_model_failure_on_one_image_fails_only_that_image(tmp_path, photo_dir, lite_encoder, monkeypatch):
    import numpy as np

    horse = float(np.asarray(lite_encoder.preprocess_image(lite_encoder.load_image(photo_dir / "horse.png"))).sum())
    real = type(lite_encoder)._embed_image_batch

    def picky(batch):
        if any(abs(float(np.asarray(x).sum()) - horse) < 1e-3 for x in batch):
            raise RuntimeError("kernel failed")
        return real(lite_encoder, batch)

    monkeypatch.setattr(lite_encoder, "_embed_image_batch", picky)
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([photo_dir])
    assert (report.added, report.failed) == (7, 1)
    assert lib.failures()[0].path.endswith("horse.png")
    assert "the model failed on it: RuntimeError: kernel failed" == lib.failures()[0].reason
    assert Path(lib.search("a cat", k=1)[0].path).name == "cat.png"


def test_an_unlistable_folder_is_recorded_and_its_siblings_indexed(tmp_path, photo_dir, lite_encoder, monkeypatch):
    private = photo_dir / "private"
    private.mkdir()
    shutil.copy(photo_dir / "cat.png", private / "secret_cat.png")
    if os.geteuid() == 0:  # root lists any folder: make this one fail the way a chmod 000 would for a user
        import polymodal.library.scan as scan

        real = os.scandir

        def scandir(path):
            if os.fsdecode(path) == str(private):
                raise PermissionError(13, "Permission denied", os.fsdecode(path))
            return real(path)

        monkeypatch.setattr(scan.os, "scandir", scandir)
    else:
        os.chmod(private, 0)
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([photo_dir])
    assert (report.added, report.failed) == (8, 1)
    assert [(f.path, f.reason) for f in lib.failures()] == [
        (str(private), "cannot list directory: permission denied")]
