"""The pointing game (Zhang et al., ECCV 2016, "Top-down Neural Attention by Excitation Backprop"): a
localisation method scores a hit when its peak falls inside the box of the object the query names.

Scenes are composed, not annotated: real photos pasted at seeded random places on a larger textured canvas,
so every object's box is known exactly and a scene can be rebuilt from its seed. The photos are the ones
scikit-image and scikit-learn ship (no download), each with the query that names it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import MissingDependencyError

#: the query that names each photo's object; a scene asks one query per object in it
QUERIES: dict[str, str] = {
    "cat": "a cat",
    "coffee": "a cup of coffee",
    "rocket": "a rocket",
    "motorbike": "a motorbike",
    "horse": "a horse",
    "flower": "a flower",
    "china": "a temple",
    "astronaut": "an astronaut",
}

_SKIMAGE = {"cat": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg", "motorbike": "motorcycle_left.png",
            "astronaut": "astronaut.png", "horse": "horse.png"}
_SKLEARN = {"flower": "flower.jpg", "china": "china.jpg"}


def sample_photos() -> dict[str, Path]:
    """The photos behind ``QUERIES``, by name, from the installed scikit-image and scikit-learn."""
    try:
        import skimage
        import sklearn.datasets
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "scikit-image", "the pointing game's sample photos") from None
    sk = Path(skimage.__file__).parent / "data"
    sl = Path(sklearn.datasets.__file__).parent / "images"
    return {**{k: sk / v for k, v in _SKIMAGE.items()}, **{k: sl / v for k, v in _SKLEARN.items()}}


@dataclass(frozen=True)
class SceneObject:
    name: str  # key of QUERIES
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) on the canvas, x1/y1 exclusive


@dataclass(frozen=True)
class Scene:
    image: Any  # RGB PIL image
    objects: tuple[SceneObject, ...]
    seed: int


@dataclass(frozen=True)
class PointingResult:
    method: str
    hits: int
    queries: int
    seconds: float  # wall time of all the explain calls
    misses: list[tuple[int, str]] = field(default_factory=list)  # (scene seed, object name) of each miss

    @property
    def accuracy(self) -> float:
        return self.hits / self.queries if self.queries else 0.0

    @property
    def seconds_per_query(self) -> float:
        return self.seconds / self.queries if self.queries else 0.0


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A neutral textured canvas: a soft colour gradient, low-frequency blotches and fine grain."""
    base = rng.uniform(90, 200, size=3)
    tint = rng.uniform(-40, 40, size=3)
    ramp = np.linspace(0, 1, width)[None, :, None] * np.linspace(0.5, 1, height)[:, None, None]
    coarse = rng.normal(0, 18, size=(height // 32 + 2, width // 32 + 2))
    from PIL import Image

    blotches = np.asarray(Image.fromarray(coarse.astype(np.float32), mode="F").resize(
        (width, height), Image.Resampling.BICUBIC), dtype=np.float32)[:, :, None]
    grain = rng.normal(0, 6, size=(height, width, 1))
    canvas = base + tint * ramp + blotches + grain
    return np.clip(canvas, 0, 255).astype(np.uint8)


def compose_scene(seed: int, photos: Mapping[str, Path] | None = None, objects: int = 3,
                  size: tuple[int, int] = (768, 512), side: tuple[int, int] = (170, 240)) -> Scene:
    """``objects`` photos, each scaled so its long side is in ``side``, pasted without overlap on a
    ``size`` canvas; everything is drawn from ``seed``."""
    from PIL import Image

    from polymodal.media.images import load_image

    photos = dict(photos or sample_photos())
    rng = np.random.default_rng(seed)
    width, height = size
    canvas = Image.fromarray(_background(rng, width, height))
    names = [str(n) for n in rng.choice(sorted(photos), size=objects, replace=False)]
    placed: list[SceneObject] = []
    for name in names:
        img = load_image(photos[name])
        long_side = int(rng.integers(side[0], side[1] + 1))
        scale = long_side / max(img.size)
        w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
        img = img.resize((w, h), Image.Resampling.LANCZOS)
        for _ in range(500):  # rejection sampling: three ~200-pixel photos fit a 768 x 512 canvas easily
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            box = (x, y, x + w, y + h)
            if all(_apart(box, o.box) for o in placed):
                break
        else:
            raise ValueError(f"cannot place {objects} objects of side {side} on a {width} x {height} canvas")
        canvas.paste(img, (x, y))
        placed.append(SceneObject(name, box))
    return Scene(canvas, tuple(placed), seed)


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = 8) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def play(explain: Callable[[Any, str], tuple[int, int]], scenes: Sequence[Scene], method: str = "",
         queries: Mapping[str, str] = QUERIES) -> PointingResult:
    """Ask ``explain(image, query) -> (x, y)`` for every object of every scene; a hit is a peak in its box."""
    hits, total, seconds, misses = 0, 0, 0.0, []
    for scene in scenes:
        for obj in scene.objects:
            start = time.perf_counter()
            x, y = explain(scene.image, queries[obj.name])
            seconds += time.perf_counter() - start
            total += 1
            x0, y0, x1, y1 = obj.box
            if x0 <= x < x1 and y0 <= y < y1:
                hits += 1
            else:
                misses.append((scene.seed, obj.name))
    return PointingResult(method, hits, total, seconds, misses)
