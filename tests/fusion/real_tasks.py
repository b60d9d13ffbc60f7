"""Three fusion tasks on pictures drawn with Pillow, as JSONL rows a user would write (issue 16).

- ``colour``: a shape of one colour and a sentence naming a colour; label = whether they agree. Only the
  agreement carries the label, so late fusion cannot see it.
- ``relation``: a red and a blue shape side by side and the claim "the red shape is left of the blue one";
  label = whether it is true. Mean-pooled features have lost where things are; tokens with positions have not.
- ``evidence``: the colour task's pictures and a sentence naming the label, a colour the picture shows 96%
  of the time: two independent sources of evidence, for a modality missing at test time.

Every task has fixed splits (``TRAIN``/``VAL``/``TEST`` rows), and the same seed draws the same pictures, so a
second run hits the feature cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (235, 220, 30),
           "purple": (140, 40, 180)}
SHAPES = ("square", "circle", "triangle")
SIDE = 224
TRAIN, VAL, TEST = 360, 90, 150
CLAIM = "the red shape is left of the blue one"


def _shape(d: ImageDraw.ImageDraw, kind: str, cx: int, cy: int, r: int, colour: tuple[int, int, int]) -> None:
    if kind == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (SIDE, SIDE), (245, 245, 245))
    return img, ImageDraw.Draw(img)


def _split(i: int) -> str:
    return "test" if i < TEST else "val" if i < TEST + VAL else "train"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_tasks(root: Path, seed: int = 0) -> dict[str, Path]:
    """Draw the pictures under ``root`` and write ``<task>.jsonl`` for each task; returns the files by task."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    colour_rows, evidence_rows, relation_rows = [], [], []
    for i in range(TRAIN + VAL + TEST):
        colour, kind = names[rng.integers(len(names))], SHAPES[rng.integers(len(SHAPES))]
        img, d = _canvas()
        r = int(rng.integers(30, 60))
        cx, cy = (int(v) for v in rng.integers(r, SIDE - r, 2))
        _shape(d, kind, cx, cy, r, COLOURS[colour])
        name = f"colour-{i}.png"
        img.save(root / name)
        agree = i % 2 == 0
        said = colour if agree else names[(names.index(colour) + 1 + int(rng.integers(4))) % 5]
        colour_rows.append({"image": name, "text": f"a {said} {kind}", "label": "yes" if agree else "no",
                            "split": _split(i)})
        if rng.random() >= 0.8:  # draws of the task's first version, kept so the pictures after them stay put
            rng.integers(4)
        evidence_rows.append({"image": name, "colour": colour, "split": _split(i)})

        img, d = _canvas()
        red_left = bool(rng.integers(2))
        r = int(rng.integers(18, 30))
        xl, xr = int(rng.integers(r, SIDE // 2 - r)), int(rng.integers(SIDE // 2 + r, SIDE - r))
        yl, yr = (int(v) for v in rng.integers(r, SIDE - r, 2))
        k1, k2 = (SHAPES[k] for k in rng.integers(len(SHAPES), size=2))
        _shape(d, k1, xl, yl, r, COLOURS["red" if red_left else "blue"])
        _shape(d, k2, xr, yr, r, COLOURS["blue" if red_left else "red"])
        name = f"relation-{i}.png"
        img.save(root / name)
        relation_rows.append({"image": name, "text": CLAIM, "label": "true" if red_left else "false",
                              "split": _split(i)})
    # Evidence: the text always names the label; the picture shows it 96% of the time (another colour
    # otherwise). Late fusion's image head stands alone; early fusion learns to lean on the sure text.
    ev = np.random.default_rng(seed + 1)
    for row in evidence_rows:
        colour = str(row.pop("colour"))
        label = colour if ev.random() < 0.96 else names[(names.index(colour) + 1 + int(ev.integers(4))) % 5]
        row.update(text=f"something {label}", label=label)
    return {"colour": _write(root / "colour.jsonl", colour_rows),
            "evidence": _write(root / "evidence.jsonl", evidence_rows),
            "relation": _write(root / "relation.jsonl", relation_rows)}
