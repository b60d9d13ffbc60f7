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


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A real 1 MiB tmpfs, so a full disk is the kernel's ENOSPC, not a mock (needs root, as CI runs)."""
    import shutil
    import subprocess

    mnt = tmp_path / "fs"
    mnt.mkdir()
    if shutil.which("mount") is None or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
    ).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the mocked full-disk tests above still run")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_real_full_filesystem_mid_write(tiny_fs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    images = [_image(i) for i in (1, 2)]
    for img in images:  # noise does not compress: each PNG is a few KB
        img.image = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    total = sum(len(prov.png_bytes(i)) + len(prov.sidecar_bytes(i, "x.png")) for i in images)
    page = os.statvfs(tiny_fs).f_frsize
    # leave just enough free bytes for the files' sum, fewer pages than four files occupy
    free_pages = -(-total // page)
    with open(tiny_fs / "filler", "wb") as fh:
        fh.write(b"\0" * (os.statvfs(tiny_fs).f_bavail - free_pages) * page)
    monkeypatch.setattr(prov, "_SLACK", 0)
    assert prov.shutil.disk_usage(tiny_fs).free >= total  # the space check passes; the kernel then says no
    with pytest.raises(OutputSpaceError, match=r"no space left in .*nothing was kept"):
        prov.save_images(images, tiny_fs)
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler"]


def test_real_full_filesystem_refused_before_generating(tiny_fs: Path, tiny_sd: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from polymodal.cli import main

    code = main(["generate", "a cat", "--model", str(tiny_sd), "--size", "64", "--steps", "1", "-n", "1",
                 "--encoder", "lite", "--out", str(tiny_fs / "out")])
    assert code == 1 and "not enough space in" in capsys.readouterr().err
    assert list((tiny_fs / "out").iterdir()) == []
