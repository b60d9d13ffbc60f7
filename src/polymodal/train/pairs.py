"""Image–text pairs for contrastive fine-tuning: JSONL/CSV rows, or a folder of images with caption sidecars.

Rows have ``image`` (a path relative to the file) and ``text`` (or ``caption``), optionally ``split``
(train / val) and ``id``. A folder pairs ``photo.jpg`` with ``photo.txt``. Every image is checked to exist
and to decode before training starts, so a bad file stops the run at once, naming it, instead of at step
5,000 — or, with ``skip_bad``, is reported and left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from polymodal.errors import ImageDecodeError, InputError
from polymodal.train.records import SPLITS, BadRow, read_records

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FIELDS = ("image", "text", "caption", "split", "id")


@dataclass(frozen=True)
class Pair:
    where: str  # "line 3 of pairs.jsonl" or the image path, for messages
    image: str  # resolved path
    text: str
    split: str | None  # train / val, when given


@dataclass
class PairSet:
    source: Path
    pairs: list[Pair]
    skipped: list[BadRow] = field(default_factory=list)


def _check_image(path: Path, where: str) -> None:
    from polymodal.media.images import load_image

    if not path.is_file():
        raise InputError(f"{where}: image {path} does not exist")
    try:
        load_image(str(path))
    except ImageDecodeError as exc:
        raise InputError(f"{where}: {exc}") from None


def read_pairs(path: str | Path, *, skip_bad: bool = False) -> PairSet:
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, skip_bad)
    pairs: list[Pair] = []
    skipped: list[BadRow] = []
    for line, rec in read_records(path):
        where = f"line {line} of {path}"
        try:
            unknown = sorted(set(rec) - set(FIELDS))
            if unknown:
                raise InputError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; pairs have "
                                 "image, text (or caption), split and id")
            image, text = rec.get("image"), rec.get("text", rec.get("caption"))
            if not isinstance(image, str) or not image:
                raise InputError(f"{where} has no image path")
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{where} has no text (field 'text' or 'caption')")
            file = Path(image).expanduser()
            file = file if file.is_absolute() else path.parent / file
            _check_image(file, where)
            split = None
            if rec.get("split") not in (None, ""):
                split = SPLITS.get(str(rec["split"]).strip().lower())
                if split not in ("train", "val"):
                    raise InputError(f"{where}: split {rec['split']!r} is not train or val")
            pairs.append(Pair(where, str(file), text.strip(), split))
        except InputError as exc:
            if not skip_bad:
                raise
            skipped.append(BadRow(line, str(exc)))
    return _done(path, pairs, skipped)


def _read_folder(folder: Path, skip_bad: bool) -> PairSet:
    pairs: list[Pair] = []
    skipped: list[BadRow] = []
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    for n, img in enumerate(images, start=1):
        try:
            sidecar = img.with_suffix(".txt")
            if not sidecar.is_file():
                raise InputError(f"image {img} has no caption sidecar {sidecar.name}")
            text = sidecar.read_text(encoding="utf-8").strip()
            if not text:
                raise InputError(f"caption sidecar {sidecar} is empty")
            _check_image(img, str(img))
            pairs.append(Pair(str(img), str(img), text, None))
        except (InputError, UnicodeDecodeError) as exc:
            if not skip_bad:
                raise InputError(str(exc)) from None
            skipped.append(BadRow(n, str(exc)))
    return _done(folder, pairs, skipped)


def _done(source: Path, pairs: list[Pair], skipped: list[BadRow]) -> PairSet:
    if not pairs:
        extra = f" ({len(skipped)} bad ones skipped)" if skipped else ""
        raise InputError(f"no image–text pairs in {source}{extra}")
    return PairSet(source, pairs, skipped)
