"""OCR is offline: no socket is opened, and OpenCV (whose GUI build needs libGL) is never imported."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


class _Blocked(OSError):
    pass


def _refuse(self, address):
    raise _Blocked(f"network call to {address} during OCR")


def test_no_network_call(rendered, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    # positive control: the block is in force
    with pytest.raises(_Blocked), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.connect(("127.0.0.1", 9))
    from polymodal.ocr import load_engine, read_text

    result = read_text([rendered[0].path], engine=load_engine())  # a fresh load, models and all, blocked too
    assert result[0].lines


def test_models_are_inside_the_installed_package() -> None:
    import importlib.util
    from pathlib import Path

    from polymodal.ocr.rapid import bundled_models

    package = Path(next(iter(importlib.util.find_spec("rapidocr_onnxruntime").submodule_search_locations)))
    for path in bundled_models().values():
        assert path.is_file() and package in path.parents


def test_missing_model_file_is_an_error_not_a_download(tmp_path) -> None:
    from polymodal.errors import ModelLoadError
    from polymodal.ocr import load_engine

    for name in ("det.onnx", "cls.onnx"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"missing: .*rec.onnx.*nothing is downloaded"):
        load_engine(f"rapid:{tmp_path}")


def test_runs_without_opencv(rendered) -> None:
    code = (
        "import sys; sys.modules['cv2'] = None\n"  # any `import cv2` now raises ImportError
        "from polymodal.ocr import read_text\n"
        f"r = read_text([{str(rendered[1].path)!r}])\n"
        "assert r[0].lines, r\n"
        "assert sys.modules['cv2'] is None\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
