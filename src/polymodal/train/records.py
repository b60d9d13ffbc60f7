"""Rows of a JSONL or CSV data file, and the rows a run left out; shared by fusion training and fine-tuning.

Each trainer checks its own fields (``fusion.data`` labelled multimodal rows, ``train.pairs`` image–text pairs);
this only reads the file, with errors that name the line and the file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from polymodal.errors import InputError

#: the names a file may give its splits, and the split each means
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


def read_records(path: Path) -> list[tuple[int, dict[str, object]]]:
    if not path.is_file():
        raise InputError(f"data file {path} does not exist" if not path.exists() else f"{path} is not a file")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".json", ".csv", ".tsv"):
        raise InputError(f"data file {path} must be .jsonl or .csv (got {suffix or 'no extension'})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read data file {path}: {exc}") from None
    out: list[tuple[int, dict[str, object]]] = []
    if suffix in (".jsonl", ".ndjson", ".json"):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise InputError(f"line {n} of {path} is not valid JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise InputError(f"line {n} of {path} is not a JSON object (one row per line is expected)")
            out.append((n, obj))
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        for n, rec in enumerate(reader, start=2):
            if None in rec:
                raise InputError(f"line {n} of {path} has more cells than the header has columns")
            out.append((n, {k: v for k, v in rec.items() if v is not None}))
    return out
