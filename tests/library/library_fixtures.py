"""Fixtures the library tests and the hardening tests share: the offline model loaded once, an isolated
environment per test, real photos, and a counter of embedded images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from library_helpers import photo_sources


@pytest.fixture(scope="session")
def lite_encoder():
    """The offline model, loaded once for the whole session (about 3 s)."""
    from polymodal.models import load_model

    return load_model("lite")


@pytest.fixture(autouse=True)
def _library_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POLYMODAL_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("POLYMODAL_MODEL", "lite")
    monkeypatch.delenv("POLYMODAL_LIBRARY", raising=False)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder holding the eight real photos, named by subject (cat.png, coffee.png, ...)."""
    d = tmp_path / "photos"
    d.mkdir()
    for name, src in photo_sources().items():
        shutil.copy(src, d / f"{name}{src.suffix}")
    return d


@pytest.fixture
def embed_count(lite_encoder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-element list counting the images the session's encoder embeds from now on."""
    count = [0]
    inner = type(lite_encoder)._embed_image_batch

    def counting(batch):
        count[0] += len(batch)
        return inner(lite_encoder, batch)

    monkeypatch.setattr(lite_encoder, "_embed_image_batch", counting)
    return count
