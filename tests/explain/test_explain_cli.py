"""``polymodal explain``: JSON, the overlay PNG, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polymodal.cli import main
from polymodal.explain.pointing import compose_scene


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    scene = compose_scene(21)
    path = tmp_path_factory.mktemp("explain") / "scene.png"
    scene.image.save(path)
    return path, scene


@pytest.mark.slow
def test_json_and_overlay(scene_png: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          cam_lite: Any) -> None:
    from PIL import Image

    path, scene = scene_png
    target = scene.objects[0]
    out = tmp_path / "heat.png"
    from polymodal.explain.pointing import QUERIES

    assert main(["explain", str(path), "--text", QUERIES[target.name], "--json", "--out", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"width", "height", "grid", "peak", "box"}
    assert (data["width"], data["height"]) == scene.image.size
    rows, cols = len(data["grid"]), len(data["grid"][0])
    assert (rows, cols) == (16, 24) and all(len(r) == cols for r in data["grid"])
    x, y = data["peak"]
    x0, y0, x1, y1 = target.box
    assert x0 <= x < x1 and y0 <= y < y1
    assert data["box"][0] < data["box"][2] <= data["width"] and data["box"][1] < data["box"][3] <= data["height"]
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == scene.image.size


def test_unreadable_image_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    assert main(["explain", str(bad), "--text", "a cat"]) == 4
    assert "broken.png" in capsys.readouterr().err


def test_empty_text_exits_4(scene_png: tuple[Path, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(scene_png[0]), "--text", ""]) == 4
    assert "text is empty" in capsys.readouterr().err


def test_cam_with_another_model_exits_4(scene_png: tuple[Path, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(scene_png[0]), "--text", "a cat", "--method", "cam", "-m", "hf:x/y"]) == 4
    assert "window" in capsys.readouterr().err
