"""``evaluate_ocr``: character error rate and line accuracy of an OCR engine against ground truth.

Ground truth is a JSONL file of ``{"image": path, "lines": ["text", ...]}`` rows (paths relative to the
file's folder), or a folder of images each with a ``.txt`` sidecar holding its lines, one per line.

Texts are compared after ``normalise`` (Unicode NFKC, whitespace removed, case folded): OCR spacing between
Chinese characters, and between words set in small print, is not what a search would care about. A picture's
CER is the edit distance between its true lines joined in order and the recognised ones joined in reading
order, over the true length; the overall CER sums both over all pictures. Line accuracy is the share of true
lines recognised exactly (after normalising) as one of the picture's lines.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polymodal.errors import InputError
from polymodal.ocr.api import MAX_LINES, read_text
from polymodal.ocr.base import OcrEngine, load_engine


@dataclass(frozen=True)
class OcrSample:
    image: str  # path
    lines: list[str]  # the true lines, in reading order


@dataclass
class OcrEvalResult:
    engine: str
    data: str
    images: int
    lines: int  # true lines
    cer: float  # character error rate over all pictures (0 = perfect; can exceed 1 with many false lines)
    line_accuracy: float  # share of true lines read exactly (normalised)
    per_image: list[dict[str, Any]] = field(default_factory=list)  # image, cer, lines found, lines read exactly

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def normalise(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def load_ocr_truth(data: str | Path) -> list[OcrSample]:
    """Samples from a JSONL file or a folder of images with .txt sidecars (see the module docstring)."""
    path = Path(data)
    if path.is_dir():
        samples = []
        # the sidecars say which files are pictures: any other file beside a same-named .txt is one
        for image in sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() != ".txt"):
            sidecar = image.with_suffix(".txt")
            if sidecar.is_file():
                text = sidecar.read_text(encoding="utf-8")
                samples.append(OcrSample(str(image), [ln for ln in text.splitlines() if ln.strip()]))
        if not samples:
            raise InputError(f"{path} holds no image with a .txt sidecar of its text lines")
        return samples
    if not path.is_file():
        raise InputError(f"OCR ground truth {path} is neither a .jsonl file nor a folder")
    samples = []
    with path.open(encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                image, lines = row["image"], row["lines"]
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f'{path}:{n}: expected {{"image": path, "lines": ["text", ...]}} ({exc})') from None
            if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
                raise InputError(f"{path}:{n}: 'lines' must be a list of strings")
            samples.append(OcrSample(str((path.parent / image) if not Path(image).is_absolute() else image), lines))
    if not samples:
        raise InputError(f"{path} holds no rows")
    return samples


def evaluate_ocr(data: str | Path, engine: OcrEngine | str | None = None, max_lines: int = MAX_LINES,
                 progress: Callable[[int, int], None] | None = None) -> OcrEvalResult:
    samples = load_ocr_truth(data)
    ocr = engine if isinstance(engine, OcrEngine) else load_engine(engine)
    results = read_text([s.image for s in samples], engine=ocr, max_lines=max_lines, progress=progress)
    errors = chars = exact = total_lines = 0
    per_image = []
    for sample, result in zip(samples, results):
        truth = [normalise(t) for t in sample.lines if normalise(t)]
        read = [normalise(line.text) for line in result.lines]
        dist = edit_distance("".join(truth), "".join(read))
        hits = sum(1 for t in truth if t in read)
        errors, chars = errors + dist, chars + sum(map(len, truth))
        exact, total_lines = exact + hits, total_lines + len(truth)
        per_image.append({"image": sample.image, "cer": dist / max(1, sum(map(len, truth))),
                          "lines": len(truth), "found": len(read), "exact": hits})
    return OcrEvalResult(engine=ocr.name, data=str(data), images=len(samples), lines=total_lines,
                         cer=errors / max(1, chars), line_accuracy=exact / max(1, total_lines), per_image=per_image)
