"""Reading labelled multimodal rows from JSONL or CSV, with errors that name the row and the file.

A row has any of the modality fields (``image``, ``text``, ``audio``, ``video``: a path relative to the data
file, or the text itself), a label field (``label`` unless told otherwise), and optionally ``split``
(train / val / test) and ``id``. An empty or absent modality field is a missing modality, handled by masking.
Bad rows stop the run with an error naming them, unless the caller asks for them to be reported and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from polymodal.errors import InputError, UnsupportedModalityError

# The file reader is shared with contrastive fine-tuning, so it lives in polymodal.train.records (fusion may
# import train, never the reverse). Importing these three from here still works until 0.2.
from polymodal.train.records import SPLITS, BadRow, read_records

MODALITIES = ("image", "text", "audio", "video")
#: modalities whose field holds a path to a file
FILE_MODALITIES = ("image", "audio", "video")
OTHER_FIELDS = ("split", "id")


@dataclass(frozen=True)
class Row:
    line: int  # line of the file the row came from (1-based; a CSV's header is line 1)
    values: dict[str, str]  # modality -> path (resolved) or text; only the modalities present
    label: str | None
    split: str | None  # train / val / test, when the file gives splits
    id: str | None = None


@dataclass
class Dataset:
    source: Path
    rows: list[Row]
    modalities: tuple[str, ...]  # modalities present in at least one row, in MODALITIES order
    skipped: list[BadRow] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted({r.label for r in self.rows if r.label is not None})


def read_dataset(
    path: str | Path,
    *,
    target: str = "label",
    require_label: bool = True,
    supported: tuple[str, ...] = ("image", "text"),
    skip_bad: bool = False,
) -> Dataset:
    """Read and check every row. With ``skip_bad`` bad rows land in ``Dataset.skipped`` instead of raising."""
    path = Path(path)
    raw = read_records(path)
    if not raw:
        raise InputError(f"data file {path} has no rows")
    known = set(MODALITIES) | set(OTHER_FIELDS) | {target}
    if require_label and not any(target in rec for _, rec in raw):
        seen = sorted({k for _, rec in raw for k in rec})
        raise InputError(
            f"no row of {path} has the label field {target!r} (fields: {', '.join(seen)}); "
            "name the label field with --target FIELD"
        )
    rows: list[Row] = []
    skipped: list[BadRow] = []
    for line, rec in raw:
        try:
            rows.append(_check_row(path, line, rec, target, known, require_label, supported))
        except InputError as exc:
            if not skip_bad:
                raise
            skipped.append(BadRow(line, str(exc)))
    if not rows:
        raise InputError(f"no usable rows in {path} ({len(skipped)} bad rows skipped)")
    present = {m for r in rows for m in r.values}
    return Dataset(path, rows, tuple(m for m in MODALITIES if m in present), skipped)


def _check_row(
    path: Path,
    line: int,
    rec: dict[str, object],
    target: str,
    known: set[str],
    require_label: bool,
    supported: tuple[str, ...],
) -> Row:
    where = f"line {line} of {path}"
    unknown = sorted(set(rec) - known)
    if unknown:
        raise InputError(
            f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; rows may have "
            f"{', '.join(MODALITIES)}, {target!r} (the label), split and id"
        )
    values: dict[str, str] = {}
    for m in MODALITIES:
        v = rec.get(m)
        if v is None or v == "":
            continue
        if not isinstance(v, str):
            raise InputError(f"{where}: field {m!r} must be a string (a path or a text), got {type(v).__name__}")
        if m not in supported:
            raise UnsupportedModalityError(
                f"{where} has a {m!r} field, but no encoder for {m} is available; "
                f"supported modalities: {', '.join(supported)} (leave the field empty or drop it)"
            )
        if m in FILE_MODALITIES:
            file = Path(v).expanduser()
            file = file if file.is_absolute() else path.parent / file
            if not file.is_file():
                raise InputError(f"{where}: {m} file {v} does not exist (looked at {file})")
            v = str(file)
        values[m] = v
    if not values:
        raise InputError(f"{where} has none of the fields {', '.join(supported)}; nothing to learn from")
    label_value = rec.get(target)
    label = None if label_value is None or label_value == "" else str(label_value)
    if require_label and label is None:
        raise InputError(f"{where} has no label (field {target!r})")
    split = None
    if rec.get("split") not in (None, ""):
        split = SPLITS.get(str(rec["split"]).strip().lower())
        if split is None:
            raise InputError(f"{where}: split {rec['split']!r} is not one of train, val, test")
    rid = rec.get("id")
    return Row(line, values, label, split, None if rid is None else str(rid))


def check_classes(ds: Dataset, target: str) -> list[str]:
    classes = ds.classes
    if len(classes) < 2:
        only = f" ({classes[0]!r})" if classes else ""
        raise InputError(
            f"the label field {target!r} of {ds.source} has {len(classes)} class{only}; "
            "a classifier needs at least two"
        )
    return classes
