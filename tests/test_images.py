"""Image decoding: bad input is an error naming the input; orientation and transparency are handled."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from polymodal.errors import ImageDecodeError, InputError
from polymodal.media.images import load_image


def test_bad_files(tmp_path, photos):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    truncated = tmp_path / "cut.jpg"
    data = photos["rocket"].read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    cases = {empty: "empty", text: "not a recognised image", truncated: "truncated",
             tmp_path / "missing.png": "no such file", tmp_path: "directory"}
    for path, reason in cases.items():
        with pytest.raises(ImageDecodeError, match=reason) as err:
            load_image(path)
        assert str(path) in str(err.value)
    with pytest.raises(ImageDecodeError, match="0 bytes"):
        load_image(b"")
    with pytest.raises(InputError, match="file path, bytes or a PIL image"):
        load_image(12345)


def test_decompression_bomb_guard_stays_on(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 40,000 px is then 4x over: a "bomb"
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(path)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    assert load_image(path).size == (20, 60)


def test_transparency_composited_on_white_and_modes_converted():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    grey = io.BytesIO()
    Image.new("L", (4, 4), 128).save(grey, format="PNG")
    out = load_image(grey.getvalue())
    assert out.mode == "RGB" and out.getpixel((1, 1)) == (128, 128, 128)
