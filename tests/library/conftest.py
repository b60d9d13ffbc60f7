"""Fixtures for the library tests: the offline model loaded once, real photos, images made on the spot."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

SKIMAGE = {"cat": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg", "motorbike": "motorcycle_left.png",
           "astronaut": "astronaut.png", "horse": "horse.png"}
SKLEARN = {"flower": "flower.jpg", "china": "china.jpg"}


def photo_sources() -> dict[str, Path]:
    import skimage
    import sklearn.datasets

    sk = Path(skimage.__file__).parent / "data"
    sl = Path(sklearn.datasets.__file__).parent / "images"
    out = {k: sk / v for k, v in SKIMAGE.items()} | {k: sl / v for k, v in SKLEARN.items()}
    for p in out.values():
        assert p.exists(), p
    return out


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


def noise_images(folder: Path, n: int, size: int = 48, seed: int = 0) -> list[Path]:
    """``n`` distinct small PNGs of smooth random colour fields (distinct bytes, distinct content)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)
        p = folder / f"img_{i:04d}.png"
        img.save(p)
        out.append(p)
    return out


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
