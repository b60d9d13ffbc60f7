"""The default engine on pictures drawn here: text, boxes, reading order, orientation, limits, errors."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from polymodal.errors import ImageDecodeError, InputError
from polymodal.ocr import OcrError, OcrLine, read_text
from polymodal.ocr.evaluate import normalise


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _match(drawn, lines: list[OcrLine]) -> OcrLine:
    best = max(lines, key=lambda ln: _iou(ln.box, drawn.box))
    assert _iou(best.box, drawn.box) > 0.5, f"no box where {drawn.text!r} was drawn at {drawn.box}: {lines}"
    return best


def test_every_drawn_line_is_read_where_it_was_drawn(rendered, read_pages) -> None:
    for page, result in zip(rendered, read_pages):
        with Image.open(page.path) as picture:
            assert (result.width, result.height) == picture.size
        for drawn in page.lines:
            line = _match(drawn, result.lines)
            assert normalise(line.text) == normalise(drawn.text), (page.name, drawn, line)
            assert 0.5 <= line.confidence <= 1.0
            assert len(line.quad) == 4
            xs, ys = [p[0] for p in line.quad], [p[1] for p in line.quad]
            assert line.box[0] <= min(xs) + 1 and line.box[2] >= max(xs) - 1
            assert line.box[1] <= min(ys) + 1 and line.box[3] >= max(ys) - 1


def test_upside_down_line_is_turned(rendered, read_pages) -> None:
    flipped = [(d, r) for p, r in zip(rendered, read_pages) for d in p.lines if d.upside_down]
    assert flipped
    for drawn, result in flipped:
        assert normalise(_match(drawn, result.lines).text) == normalise(drawn.text)


def test_reading_order_top_to_bottom_then_left_to_right(rendered, read_pages) -> None:
    page, result = rendered[0], read_pages[0]
    order = [normalise(_match(d, result.lines).text) for d in page.lines]
    read = [normalise(ln.text) for ln in result.lines]
    # the two top lines share a row: left one first; then down the page
    assert [read.index(t) for t in order] == sorted(read.index(t) for t in order)


def test_reading_order_groups_a_row_out_of_level() -> None:
    from polymodal.ocr.layout import reading_order

    def line(text: str, box: tuple[int, int, int, int]) -> OcrLine:
        return OcrLine(text, 0.9, box, ((box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])))

    lines = [line("c", (10, 100, 90, 130)), line("b", (500, 22, 600, 52)), line("a", (10, 10, 200, 40)),
             line("d", (300, 104, 400, 128))]
    assert [ln.text for ln in reading_order(lines)] == ["a", "b", "c", "d"]


def test_exif_rotated_photo_gives_boxes_in_displayed_pixels(tmp_path, engine) -> None:
    from conftest_ocr import SANS, _photo, draw_lines
    from PIL import Image

    shown = _photo("chelsea.png", (900, 600))  # as a viewer displays it: landscape
    drawn = draw_lines(shown, [("Orientation six", SANS, 40, (420, 80), False)])[0]
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # the camera's pixels: portrait
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=exif)
    result = read_text([path], engine=engine)[0]
    assert (result.width, result.height) == (900, 600)
    line = _match(drawn, result.lines)
    assert normalise(line.text) == normalise(drawn.text)


def test_picture_of_thousands_of_words_is_capped(tmp_path, engine) -> None:
    from conftest_ocr import MONO, font
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (1600, 1600), "white")
    draw, f = ImageDraw.Draw(page), font(MONO, 16)
    for row in range(75):
        for col in range(27):
            draw.text((8 + col * 59, 8 + row * 21), f"{(row * 27 + col) % 1000:03d}", font=f, fill="black")
    path = tmp_path / "wall.png"
    page.save(path)
    result = read_text([path], engine=engine, max_lines=25)[0]
    assert result.capped
    # the 25 largest of ~2,000 found are recognised; a few of them may read as nothing sure enough to keep
    assert 20 <= len(result.lines) <= 25
    with pytest.raises(InputError, match="max_lines"):
        read_text([path], engine=engine, max_lines=0)


def test_broken_file_is_a_clear_error(tmp_path, engine) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageDecodeError, match=r"broken\.jpg"):
        read_text([broken], engine=engine)
    with pytest.raises(ImageDecodeError, match="no such file"):
        read_text([tmp_path / "missing.png"], engine=engine)
    with pytest.raises(InputError):
        read_text([io.BytesIO(b"x")], engine=engine)


def test_engine_failure_is_named_with_the_input(tmp_path, rendered) -> None:
    from polymodal.ocr import OcrEngine

    class Broken(OcrEngine):
        name = "broken"

        def read(self, image, limit=None):
            raise RuntimeError("onnxruntime exploded")

    with pytest.raises(OcrError, match=r"broken failed on .*page0.png.*onnxruntime exploded"):
        read_text([rendered[0].path], engine=Broken())


def test_json_shape_of_the_cli(rendered, capsys) -> None:
    from polymodal.cli import main

    assert main(["ocr", "--json", str(rendered[1].path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list) and len(out) == 1
    assert out[0]["input"] == str(rendered[1].path)
    assert out[0]["lines"]
    for line in out[0]["lines"]:
        assert set(line) == {"text", "box", "quad", "confidence"}
        assert len(line["box"]) == 4 and all(isinstance(v, int) for v in line["box"])
        assert len(line["quad"]) == 4 and all(len(p) == 2 for p in line["quad"])
        assert 0 <= line["confidence"] <= 1


def test_cli_bad_input_exits_4_with_one_line(tmp_path, capsys) -> None:
    from polymodal.cli import main

    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    assert main(["ocr", str(bad)]) == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "notes.png" in err
