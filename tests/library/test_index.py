"""Indexing real photos: what is stored per item, and incremental re-runs (unchanged, moved, changed, deleted)."""

from __future__ import annotations

import io
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from polymodal.library import Library


def _open(tmp_path: Path, enc) -> Library:
    return Library.open(tmp_path / "lib", model=enc)


def _all_items(lib: Library) -> list[dict]:
    return lib.store.scan(lib.store.items(), ["id", "paths", "hash"]).to_pylist()


def test_first_index_stores_every_photo_once_with_metadata(tmp_path, photo_dir, lite_encoder):
    lib = _open(tmp_path, lite_encoder)
    report = lib.add([photo_dir])
    assert (report.added, report.failed, report.skipped) == (8, 0, 0)
    assert (tmp_path / "lib" / "library.json").exists() and (tmp_path / "lib" / "db").is_dir()
    st = lib.status()
    assert (st.items, st.files, st.model, st.dim) == (8, 8, "lite", 384)
    cat = lib.get(photo_dir / "cat.png")
    assert cat is not None and cat.kind == "image" and (cat.width, cat.height) == (451, 300)
    assert len(cat.id) == 16 and cat.path == str(photo_dir / "cat.png")
    # The id is stable: the same bytes anywhere get the same id.
    again = Library.open(tmp_path / "lib2", model=lite_encoder)
    again.add([photo_dir / "cat.png"])
    assert again.get(photo_dir / "cat.png").id == cat.id


def test_unchanged_rerun_reads_and_embeds_nothing(tmp_path, photo_dir, lite_encoder, embed_count, monkeypatch):
    lib = _open(tmp_path, lite_encoder)
    lib.add([photo_dir])
    assert embed_count[0] == 8
    import polymodal.library.ingest as ingest

    opened: list[bytes] = []
    real = ingest.read_file
    monkeypatch.setattr(ingest, "read_file", lambda raw: opened.append(raw) or real(raw))
    fresh = Library.open(tmp_path / "lib")  # by spec: the model must not even be loaded for a no-op re-run
    report = fresh.add([photo_dir])
    assert (report.added, report.updated, report.skipped, report.removed) == (0, 0, 8, 0)
    assert opened == [] and embed_count[0] == 8
    assert fresh._encoder is None
    assert fresh.store._conn is None  # answered from the scan snapshot: the database was not even opened
    # Without the snapshot (say it was lost), the full path reaches the same answer from the files table.
    (tmp_path / "lib" / "scan-cache.json").unlink()
    report = Library.open(tmp_path / "lib").add([photo_dir])
    assert (report.added, report.updated, report.skipped, report.removed) == (0, 0, 8, 0)
    assert opened == [] and embed_count[0] == 8
    assert (tmp_path / "lib" / "scan-cache.json").exists()


def test_rename_and_move_are_recognised_by_hash(tmp_path, photo_dir, lite_encoder, embed_count):
    lib = _open(tmp_path, lite_encoder)
    lib.add([photo_dir])
    cat_id = lib.get(photo_dir / "cat.png").id
    (photo_dir / "sub").mkdir()
    os.rename(photo_dir / "cat.png", photo_dir / "sub" / "kitty.png")
    before = embed_count[0]
    report = lib.add([photo_dir])
    assert (report.moved, report.removed, report.added, report.skipped) == (1, 0, 0, 7)
    assert embed_count[0] == before  # not re-embedded
    hit = lib.get(cat_id)
    assert hit.paths == (str(photo_dir / "sub" / "kitty.png"),)
    assert lib.get(photo_dir / "cat.png") is None
    assert lib.search("a cat", k=1, floor=False)[0].path == str(photo_dir / "sub" / "kitty.png")


def test_changed_file_is_re_embedded_and_old_content_dropped(tmp_path, photo_dir, lite_encoder, embed_count):
    lib = _open(tmp_path, lite_encoder)
    lib.add([photo_dir])
    old_id = lib.get(photo_dir / "cat.png").id
    # Same path, new content: a rocket now lives in cat.png.
    Image.open(photo_dir / "rocket.jpg").save(photo_dir / "cat.png")
    before = embed_count[0]
    report = lib.add([photo_dir])
    assert (report.updated, report.added, report.skipped) == (1, 0, 7)
    assert embed_count[0] == before + 1
    assert lib.get(old_id) is None  # its only path now holds other bytes
    assert lib.search("a cat", k=1, floor=False)[0].path != str(photo_dir / "cat.png")
    assert str(photo_dir / "cat.png") in {h.path for h in lib.search("a space rocket launch", k=2, floor=False)}
    assert lib.status().items == 8


def test_deleted_files_are_pruned_by_default_and_kept_with_no_prune(tmp_path, photo_dir, lite_encoder):
    lib = _open(tmp_path, lite_encoder)
    lib.add([photo_dir])
    (photo_dir / "horse.png").unlink()
    report = lib.add([photo_dir], prune=False)
    assert report.removed == 0 and lib.status().items == 8
    report = lib.add([photo_dir])
    assert report.removed == 1 and lib.status().items == 7
    assert lib.get(photo_dir / "horse.png") is None


def test_prune_only_touches_the_scanned_folders(tmp_path, photo_dir, lite_encoder):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(photo_dir / "cat.png", other / "cat2.png")
    (other / "x.png").write_bytes((photo_dir / "horse.png").read_bytes())
    lib = _open(tmp_path, lite_encoder)
    lib.add([photo_dir, other])
    (photo_dir / "coffee.png").unlink()
    report = lib.add([other])  # photo_dir is not scanned: its missing coffee stays until it is
    assert report.removed == 0 and lib.get(photo_dir / "coffee.png") is not None
    assert lib.add([photo_dir]).removed == 1


def test_exact_duplicates_are_stored_once_with_all_paths(tmp_path, photo_dir, lite_encoder, embed_count):
    (photo_dir / "a").mkdir()
    (photo_dir / "b").mkdir()
    shutil.copy(photo_dir / "cat.png", photo_dir / "a" / "copy1.png")
    shutil.copy(photo_dir / "cat.png", photo_dir / "b" / "copy2.png")
    lib = _open(tmp_path, lite_encoder)
    report = lib.add([photo_dir])
    assert report.added == 8 and report.duplicates == 2 and embed_count[0] == 8
    items = _all_items(lib)
    assert len(items) == 8 and len({i["hash"] for i in items}) == 8
    cat = lib.get(photo_dir / "a" / "copy1.png")
    assert set(cat.paths) == {str(photo_dir / "cat.png"), str(photo_dir / "a" / "copy1.png"),
                              str(photo_dir / "b" / "copy2.png")}
    assert lib.status().files == 10
    # Deleting one copy keeps the item with the others.
    (photo_dir / "a" / "copy1.png").unlink()
    assert lib.add([photo_dir]).removed == 1
    assert len(lib.get(cat.id).paths) == 2


def _exif_photo(src: Path, dest: Path, orientation: int = 1) -> None:
    img = Image.open(src).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D Mark IV"
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2019:07:14 18:03:22"
    exif.get_ifd(0x8769)[0x9011] = "+02:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.6)
    gps[3], gps[4] = "W", (2.0, 17.0, 40.2)
    img.save(dest, exif=exif)


def test_exif_date_camera_gps_and_orientation(tmp_path, photo_dir, lite_encoder):
    shots = tmp_path / "shots"
    shots.mkdir()
    _exif_photo(photo_dir / "cat.png", shots / "rotated.png", orientation=6)
    # The same picture stored already upright, without EXIF: what the embedding of the rotated file must match.
    Image.open(photo_dir / "cat.png").convert("RGB").transpose(Image.Transpose.ROTATE_270).save(shots / "upright.png")
    lib = _open(tmp_path, lite_encoder)
    lib.add([shots])
    hit = lib.get(shots / "rotated.png")
    assert hit.date == datetime(2019, 7, 14, 16, 3, 22, tzinfo=UTC)
    assert hit.camera == "Canon EOS 5D Mark IV"
    assert hit.latitude == pytest.approx(48.858222, abs=1e-5)
    assert hit.longitude == pytest.approx(-2.294500, abs=1e-5)
    assert (hit.width, hit.height) == (300, 451)  # orientation 6: stored landscape, shown portrait
    row = lib.store.items_by("id", [hit.id], ["orientation"]).to_pylist()[0]
    assert row["orientation"] == 6
    _, vecs = lib.store.vectors([hit.id, lib.get(shots / "upright.png").id])
    assert float(vecs[0] @ vecs[1]) > 0.999  # orientation was applied before embedding


def test_thumbnails_are_256px_webp_with_orientation(tmp_path, photo_dir, lite_encoder):
    _exif_photo(photo_dir / "cat.png", photo_dir / "rotated.png", orientation=6)
    lib = _open(tmp_path, lite_encoder)
    lib.add([photo_dir])
    for name, expect in [("cat.png", (256, 170)), ("rotated.png", (170, 256))]:
        data = lib.thumbnail(lib.get(photo_dir / name).id)
        thumb = Image.open(io.BytesIO(data))
        assert thumb.format == "WEBP" and thumb.size == expect
        assert len(data) < 40_000
    # A thumbnail looks like its photo: mean colours within a few levels.
    cat = np.asarray(Image.open(photo_dir / "cat.png").convert("RGB").resize((256, 170)), np.float32)
    thumb = np.asarray(Image.open(io.BytesIO(lib.thumbnail(lib.get(photo_dir / "cat.png").id))), np.float32)
    assert np.abs(cat.mean(axis=(0, 1)) - thumb.mean(axis=(0, 1))).max() < 4


def test_every_supported_format_is_indexed(tmp_path, photo_dir, lite_encoder):
    d = tmp_path / "formats"
    d.mkdir()
    cat = Image.open(photo_dir / "cat.png").convert("RGB")
    for ext in ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"):
        cat.save(d / f"cat.{ext}")
    frames = [cat, cat.rotate(180)]
    frames[0].save(d / "cat.gif", save_all=True, append_images=frames[1:])  # an animated GIF: first frame
    shutil.copy(photo_dir / "coffee.png", d / "coffee.png")
    (d / "notes.txt").write_text("ignored: not an image extension")
    lib = _open(tmp_path, lite_encoder)
    report = lib.add([d])
    assert (report.added + report.duplicates, report.failed) == (9, 0)
    assert report.added == 7  # jpg and jpeg, tif and tiff hold identical bytes: one item each
    hits = lib.search("a cat", k=10, floor=False)
    assert Path(hits[-1].path).name == "coffee.png"
    assert all(h.path.startswith(str(d / "cat.")) for h in hits[:-1])
    gif = lib.get(d / "cat.gif")
    assert (gif.width, gif.height) == (451, 300)
