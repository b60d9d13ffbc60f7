"""Saving: all or nothing when the disk is full or the directory cannot be written."""

from __future__ import annotations

import errno
import os
from collections import namedtuple
from pathlib import Path

import pytest
from PIL import Image

from polymodal.errors import InputError, OutputSpaceError
from polymodal.generation import GeneratedImage, generate
from polymodal.generation import provenance as prov


def _image(seed: int, prompt: str = "a red car") -> GeneratedImage:
    img = Image.new("RGB", (32, 24), (seed * 40 % 256, 80, 160))
    return GeneratedImage(image=img, prompt=prompt, negative=None, seed=seed, model="diffusers:/x", steps=1,
                          guidance=0.0, width=32, height=24, score=0.5, scorer="lite", rank=seed, candidates=3)


def test_no_space_before_generation_costs_nothing(generator, scorer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(prov.shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 1000, 1000))
    made: list[int] = []
    monkeypatch.setattr(type(generator), "make", lambda self, req, progress=None: made.append(1) or [])
    with pytest.raises(OutputSpaceError, match=r"not enough space in .*free some space or give --out"):
        generate("a cat", n=2, model=generator, size=32, steps=1, seed=0, encoder=scorer, out=tmp_path / "o")
    assert made == []  # refused before any compute
    assert list((tmp_path / "o").iterdir()) == []


def test_disk_full_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = prov._write_all
    calls = {"n": 0}

    def failing(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the second image's PNG: half of it lands, then the disk is full
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    monkeypatch.setattr(prov, "_write_all", failing)
    (tmp_path / "keep.txt").write_text("the user's own file")
    images = [_image(1), _image(2)]
    with pytest.raises(OutputSpaceError, match=r"no space left in .*nothing was kept"):
        prov.save_images(images, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert all(i.path is None for i in images)


def test_failed_rename_removes_the_files_already_placed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace
    calls = {"n": 0}

    def failing(src: str, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.EIO, "I/O error")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(prov.os, "replace", failing)
    with pytest.raises(OutputSpaceError, match="cannot write images"):
        prov.save_images([_image(1), _image(2)], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_names_never_overwrite(tmp_path: Path) -> None:
    first = [_image(7)]
    prov.save_images(first, tmp_path)
    again = [_image(7)]
    prov.save_images(again, tmp_path)
    assert first[0].path != again[0].path and again[0].path.name == "a-red-car-7-2.png"
    assert again[0].sidecar.name == "a-red-car-7-2.json"
    assert oct(first[0].path.stat().st_mode & 0o777) != "0o600"  # the umask decides, not a temp-file mode


def test_out_that_is_a_file_or_cannot_be_made(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        prov.save_images([_image(1)], f)
    with pytest.raises(OutputSpaceError, match="cannot create the output directory"):
        prov.save_images([_image(1)], f / "sub")  # a path through a file cannot be made


def test_unicode_prompt_round_trips(tmp_path: Path) -> None:
    img = _image(3, prompt="一只猫 — café au lait ☕")
    prov.save_images([img], tmp_path)
    assert prov.read_provenance(img.path)["prompt"] == "一只猫 — café au lait ☕"
    assert img.path.name == "cafe-au-lait-3.png"
