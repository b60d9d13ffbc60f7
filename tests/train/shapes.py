"""Synthetic coloured shapes and their captions ("a red square"), drawn with Pillow for the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (235, 220, 30),
           "purple": (140, 40, 180)}
# Shapes that differ at the scale of an 8-pixel patch of a 32-pixel image: the tiny test CLIP sees that.
SHAPES = ("square", "dot", "stripe", "cross")


def draw(colour: str, shape: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    img = Image.new("RGB", (size, size), (245, 245, 245))
    d = ImageDraw.Draw(img)
    r = int(rng.integers(10, 14))
    cx, cy = (int(v) for v in size // 2 + rng.integers(-2, 3, 2))
    c = COLOURS[colour]
    if shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=c)
    elif shape == "dot":
        d.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=c)
    elif shape == "stripe":
        d.rectangle([0, cy - 3, size, cy + 3], fill=c)
    else:
        w = max(2, r // 3)
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=c)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=c)
    return img


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_pairs(root: Path, per_class: int = 6, seed: int = 0) -> Path:
    """pairs.jsonl: ``per_class`` training pairs per (colour, shape) and one held-out pair each (20 in all)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for colour in COLOURS:
        for shape in SHAPES:
            for k in range(per_class + 1):
                name = f"{colour}-{shape}-{k}.png"
                draw(colour, shape, rng).save(root / name)
                rows.append({"image": name, "text": f"a {colour} {shape}", "split": "val" if k == 0 else "train"})
    return write_jsonl(root / "pairs.jsonl", rows)
