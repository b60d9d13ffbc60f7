"""Formats out of the box (issue #18): HEIC/HEIF, AVIF and camera RAW photos made here from real photos, indexed
with the real ``lite`` model, searchable, their EXIF read; broken ones recorded as failures naming the file."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from format_factory import exif_block, make_dng, save_photo
from PIL import Image

from polymodal.errors import ImageDecodeError
from polymodal.library import Library
from polymodal.library.scan import image_extensions
from polymodal.media.images import load_image
from polymodal.media.metadata import read_header
from polymodal.media.raw import is_raw

PARIS = (48.8584, 2.2945)


def _others(photo_dir: Path) -> Path:
    """The photo folder without its cat, so "a cat" can only find the cat of the format under test."""
    (photo_dir / "cat.png").unlink()
    return photo_dir


def _stored(lib: Library, path: Path) -> dict:
    hit = lib.get(path)
    assert hit is not None, path
    rows = lib.store.items_by("id", [hit.id], ["taken", "camera", "latitude", "longitude", "orientation", "width",
                                               "height"]).to_pylist()
    return rows[0]


@pytest.mark.parametrize(("fmt", "name"), [("HEIF", "IMG_0001.HEIC"), ("AVIF", "cat.avif")])
def test_a_phone_photo_is_indexed_searchable_and_its_exif_read(tmp_path, photo_dir, photos, lite_encoder, fmt, name):
    assert {".heic", ".heif", ".avif"} <= image_extensions()
    folder = _others(photo_dir)
    exif = exif_block(orientation=6, taken="2021:07:14 18:03:22", offset="+02:00", gps=PARIS, make="Apple",
                      model="iPhone 15")
    (folder / name).write_bytes(save_photo(Image.open(photos["cat"]), fmt, exif))

    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([folder])
    assert (report.added, report.failed) == (8, 0), report.failures
    assert lib.search(text="a cat", k=3)[0].path == str(folder / name)
    row = _stored(lib, folder / name)
    assert row["taken"] == datetime(2021, 7, 14, 16, 3, 22, tzinfo=UTC)
    assert row["camera"] == "Apple iPhone 15" and row["orientation"] == 6
    assert (row["latitude"], row["longitude"]) == pytest.approx(PARIS, abs=1e-4)
    # The 451 x 300 photo turned a quarter (orientation 6): shown, stored and embedded upright
    assert (row["width"], row["height"]) == (300, 451)
    assert load_image(folder / name).size == (300, 451)


def test_a_camera_raw_is_demosaicked_indexed_and_searchable(tmp_path, photo_dir, photos, lite_encoder):
    folder = _others(photo_dir)
    dng = make_dng(Image.open(photos["cat"]), orientation=6, taken=datetime(2023, 5, 6, 7, 8, 9), gps=PARIS,
                   make="Canon", model="Canon EOS R5")
    (folder / "IMG_0001.DNG").write_bytes(dng)  # upper case, as cameras name files
    # The JPEG the camera wrote beside it: a separate item, both found by path (stacking is not done yet)
    Image.open(photos["coffee"]).save(folder / "IMG_0001.JPG", quality=85)

    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([folder])
    assert (report.added, report.failed) == (9, 0), report.failures
    assert lib.search(text="a cat", k=3)[0].path == str(folder / "IMG_0001.DNG")
    row = _stored(lib, folder / "IMG_0001.DNG")
    assert row["taken"] == datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert (row["camera"], row["orientation"]) == ("Canon EOS R5", 6)
    assert (row["latitude"], row["longitude"]) == pytest.approx(PARIS, abs=1e-4)
    assert (row["width"], row["height"]) == (300, 450)  # the sensor's 450 x 300, turned upright
    assert lib.get(folder / "IMG_0001.JPG").id != lib.get(folder / "IMG_0001.DNG").id


def _grey(img: Image.Image) -> np.ndarray:
    a = np.asarray(img.convert("L").resize((60, 90)), dtype=np.float64)
    return (a - a.mean()) / a.std()


def test_raw_decoding_uses_the_preview_when_large_enough_else_a_demosaic(photos):
    cat = Image.open(photos["cat"]).convert("RGB")
    coffee = Image.open(photos["coffee"]).convert("RGB")
    # Sensor data of a cat, preview of a coffee cup: which one comes back says which path decoded it
    dng = make_dng(cat.resize((900, 600)), preview=coffee.resize((1200, 800)), orientation=6)
    assert is_raw(dng) and not is_raw(save_photo(cat, "TIFF", b""))

    preview = load_image(dng, min_side=448)  # lite's 224 px input, twice over: the 800 px preview does
    demosaic = load_image(dng, min_side=900)  # the preview is too small; half the sensor (300 px) too
    assert preview.size == (800, 1200) and demosaic.size == (600, 900)  # both turned upright
    want_coffee = _grey(coffee.resize((1200, 800)).transpose(Image.Transpose.ROTATE_270))
    want_cat = _grey(cat.resize((900, 600)).transpose(Image.Transpose.ROTATE_270))
    assert np.mean(_grey(preview) * want_coffee) > 0.9  # correlation with the upright coffee cup
    assert np.mean(_grey(demosaic) * want_cat) > 0.9
    # Without a preview a half-size demosaic serves when it still reaches min_side
    plain = make_dng(cat.resize((900, 600)), orientation=6)
    assert load_image(plain, min_side=250).size == (300, 450)
    assert load_image(plain, min_side=400).size == (600, 900)
    meta, size = read_header(dng)
    assert size == (600, 900) and meta.orientation == 6 and meta.camera == "Polymodal Test DNG"


def test_raw_decoding_is_bounded_by_the_pixel_limit(photos, monkeypatch):
    dng = make_dng(Image.open(photos["cat"]))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        load_image(dng)


def _broken(folder: Path, photos: dict[str, Path]) -> list[str]:
    heic = save_photo(Image.open(photos["coffee"]), "HEIF", exif_block())
    (folder / "cut.heic").write_bytes(heic[: len(heic) // 2])
    (folder / "garbage.heic").write_bytes(b"not a photo at all" * 10)
    (folder / "cut.dng").write_bytes(make_dng(Image.open(photos["cat"]), truncated=True))
    (folder / "garbage.cr2").write_bytes(b"II*\0\x10\0\0\0CR\x02\0" + b"\0" * 200)
    return ["cut.dng", "cut.heic", "garbage.cr2", "garbage.heic"]


def test_broken_heic_and_raw_files_are_recorded_failures_naming_the_file(tmp_path, photo_dir, photos, lite_encoder):
    names = _broken(photo_dir, photos)
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([photo_dir])
    assert (report.added, report.failed) == (8, 4)
    assert sorted(Path(f.path).name for f in report.failures) == names
    reasons = {Path(f.path).name: f.reason for f in report.failures}
    assert "LibRaw" in reasons["cut.dng"] and "LibRaw" in reasons["garbage.cr2"]
    with pytest.raises(ImageDecodeError, match=r"cut\.heic"):
        load_image(photo_dir / "cut.heic")


def test_index_exits_4_when_every_file_failed(tmp_path, photos, lite_encoder, capsys, monkeypatch):
    import polymodal.models as models
    from polymodal.cli import main

    monkeypatch.setattr(models, "load_model", lambda spec=None, **kw: lite_encoder)
    folder = tmp_path / "bad"
    folder.mkdir()
    _broken(folder, photos)
    lib = tmp_path / "lib"
    assert main(["index", str(folder), "--library", str(lib)]) == 4
    out, err = capsys.readouterr()
    assert "failed 4" in out and "cut.dng" in out and "all 4 files failed" in err
    assert main(["index", str(folder), "--library", str(lib), "--json"]) == 4  # the same broken files again
    capsys.readouterr()
    shutil.copy(photos["cat"], folder / "cat.png")
    assert main(["index", str(folder), "--library", str(lib)]) == 0  # one good file: not bad input
