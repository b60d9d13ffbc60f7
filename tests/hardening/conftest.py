"""Fixtures for the hardening tests: the library tests' offline model, photos and environment, reused."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "library"))  # library_helpers
sys.path.insert(0, str(HERE.parent.parent / "benchmarks"))  # the chaos, corpus and fuzz scripts

from library_helpers import photo_sources  # noqa: E402


@pytest.fixture(scope="session")
def lite_encoder():
    from polymodal.models import load_model

    return load_model("lite")


@pytest.fixture(autouse=True)
def _hardening_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POLYMODAL_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("POLYMODAL_MODEL", "lite")
    monkeypatch.delenv("POLYMODAL_LIBRARY", raising=False)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for name, src in photo_sources().items():
        shutil.copy(src, d / f"{name}{src.suffix}")
    return d
