"""Helpers shared by the library tests (importable from test modules and subprocess scripts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


