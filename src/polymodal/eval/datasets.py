"""Evaluation datasets: image–caption sets for retrieval, labelled image folders for zero-shot.

Retrieval formats: Karpathy-split JSON (COCO, Flickr30k), CSV or JSONL of (image, caption) rows, and a
folder of images with ``.txt`` caption sidecars (one caption per line). Zero-shot: one folder per class.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polymodal.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class RetrievalSet:
    images: list[Path]
    captions: list[str]
    caption_image: np.ndarray  # (captions,) index into images
    name: str


@dataclass(frozen=True)
class ClassificationSet:
    images: list[Path]
    labels: np.ndarray  # (images,) index into classes
    classes: list[str]
    name: str


def _finish(pairs: dict[Path, list[str]], name: str, source: Path) -> RetrievalSet:
    missing = [str(p) for p in pairs if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{source}: {len(missing)} image(s) not found: {shown}")
    empty = [str(p) for p, caps in pairs.items() if not caps]
    if empty:
        raise InputError(f"{source}: image(s) without any caption: {', '.join(empty[:5])}")
    if not pairs:
        raise InputError(f"{source}: no image-caption pairs found")
    images = list(pairs)
    captions, owner = [], []
    for i, img in enumerate(images):
        for c in pairs[img]:
            captions.append(c)
            owner.append(i)
    return RetrievalSet(images, captions, np.asarray(owner, dtype=np.int64), name)


def load_karpathy(path: Path, image_root: Path | None = None, split: str = "test") -> RetrievalSet:
    """Karpathy's ``dataset_coco.json`` / ``dataset_flickr30k.json``: ``{"images": [{"filename", "filepath"?,
    "split", "sentences": [{"raw"}]}]}``; images resolved under ``image_root`` (default: the JSON's folder)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path} as JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{path} is not a Karpathy-split file: expected an object with an 'images' list")
    root = image_root or path.parent
    pairs: dict[Path, list[str]] = {}
    for n, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "filename" not in entry or "sentences" not in entry:
            raise InputError(f"{path}: images[{n}] lacks 'filename' or 'sentences' (not Karpathy format)")
        part = entry.get("split")
        # Karpathy's "restval" images are training images too.
        if split and part is not None and part != split and not (split == "train" and part == "restval"):
            continue
        img = root / entry.get("filepath", "") / entry["filename"]
        pairs[img] = [s["raw"].strip() for s in entry["sentences"] if isinstance(s, dict) and s.get("raw")]
    if not pairs:
        raise InputError(f"{path}: no images in split {split!r}")
    return _finish(pairs, f"{path.stem}:{split}", path)


def load_pairs(path: Path) -> RetrievalSet:
    """CSV (header with ``image`` and ``caption``) or JSONL rows ``{"image", "caption"}``; paths relative to
    the file. An image may appear on several rows (several captions)."""
    rows: list[dict[str, str]] = []
    try:
        if path.suffix.lower() == ".jsonl":
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as exc:
                        raise InputError(f"{path}:{n}: not JSON: {exc}") from None
        else:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    pairs: dict[Path, list[str]] = {}
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("image") or not str(row.get("caption", "")).strip():
            raise InputError(f"{path}: row {n} needs non-empty 'image' and 'caption' fields")
        img = (path.parent / str(row["image"])).resolve()
        pairs.setdefault(img, []).append(str(row["caption"]).strip())
    return _finish(pairs, path.stem, path)


def load_caption_folder(folder: Path) -> RetrievalSet:
    """Images with a sidecar ``NAME.txt`` beside them holding one caption per line."""
    pairs: dict[Path, list[str]] = {}
    for img in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        side = img.with_suffix(".txt")
        if side.is_file():
            pairs[img] = [ln.strip() for ln in side.read_text(encoding="utf-8").splitlines() if ln.strip()]
    orphans = [t for t in folder.rglob("*.txt") if not any(t.with_suffix(s).exists() for s in IMAGE_SUFFIXES)]
    if orphans:
        raise InputError(f"{folder}: captions with no image beside them: {', '.join(map(str, orphans[:5]))}")
    return _finish(pairs, folder.name, folder)


def load_retrieval(path: str | Path, image_root: str | Path | None = None, split: str = "test") -> RetrievalSet:
    p = Path(path).expanduser()
    if p.is_dir():
        return load_caption_folder(p)
    if not p.is_file():
        raise InputError(f"dataset {path} does not exist")
    if p.suffix.lower() == ".json":
        return load_karpathy(p, Path(image_root) if image_root else None, split)
    if p.suffix.lower() in (".csv", ".jsonl"):
        return load_pairs(p)
    raise InputError(f"dataset {path}: use a Karpathy .json, a .csv/.jsonl of (image, caption), or a folder")


def class_names(spec: str, count: int) -> list[str]:
    """``imagenet``: the cleaned ImageNet-1k names CLIP's paper used (via open_clip), in synset order, for
    an ImageNet val folder whose class folders are WordNet ids; otherwise a file with one name per line."""
    if spec == "imagenet":
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        names = list(IMAGENET_CLASSNAMES)
    else:
        try:
            names = [ln.strip() for ln in Path(spec).read_text(encoding="utf-8").splitlines() if ln.strip()]
        except OSError as exc:
            raise InputError(f"cannot read class names from {spec}: {exc.strerror}") from None
    if len(names) != count:
        raise InputError(f"class names {spec!r} give {len(names)} names for {count} class folders")
    return names


def load_image_folder(path: str | Path, classnames: str | None = None) -> ClassificationSet:
    """``ROOT/<class name>/<images>``; underscores in folder names become spaces in the class prompts.
    ``classnames`` (``imagenet`` or a file) replaces the folder names, in sorted folder order."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise InputError(f"dataset {path} is not a folder of class folders")
    classes, images, labels = [], [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"class folder {d} holds no images")
        classes.append(d.name.replace("_", " "))
        images += files
        labels += [len(classes) - 1] * len(files)
    if len(classes) < 2:
        raise InputError(f"{root}: zero-shot classification needs at least 2 class folders, found {len(classes)}")
    if classnames:
        classes = class_names(classnames, len(classes))
    return ClassificationSet(images, np.asarray(labels, dtype=np.int64), classes, root.name)
