"""``eval moments``: moment retrieval, as Charades-STA and QVHighlights measure it.

Each query names a video and the time range it describes. The videos are indexed into a temporary library
(the real ingest: shots, segments, speech) with the model under test; each query then searches that video
only, and its top moment is compared with the truth: R@1 at IoU 0.5 and 0.7 (the share of queries whose top
moment overlaps the truth by at least that much) and the mean IoU.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import InputError
from polymodal.eval.metrics import recall_at_iou, temporal_iou
from polymodal.models.base import Encoder

IOU_THRESHOLDS = (0.5, 0.7)


@dataclass(frozen=True)
class MomentQuery:
    video: str  # absolute path
    query: str
    start: float
    end: float


@dataclass
class MomentSet:
    name: str
    queries: list[MomentQuery]

    @property
    def videos(self) -> list[str]:
        return sorted({q.video for q in self.queries})


def _number(row: dict[str, Any], key: str, where: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InputError(f"{where}: {key!r} must be a number of seconds, got {value!r}")
    return float(value)


def load_moments(path: str | os.PathLike[str]) -> MomentSet:
    """A JSONL file of {"video", "query", "start", "end"} rows; videos relative to the file's folder."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--data {p} is not a file; give a .jsonl of {{video, query, start, end}} rows")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {p}: {exc}") from None
    queries = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{p}, line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where} is not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise InputError(f"{where}: each line must be an object with video, query, start, end")
        missing = [k for k in ("video", "query", "start", "end") if k not in row]
        if missing:
            raise InputError(f"{where}: missing {', '.join(missing)}")
        if not isinstance(row["video"], str) or not isinstance(row["query"], str) or not row["query"].strip():
            raise InputError(f"{where}: video and query must be non-empty texts")
        start, end = _number(row, "start", where), _number(row, "end", where)
        if not 0 <= start < end:
            raise InputError(f"{where}: needs 0 <= start < end, got start {start}, end {end}")
        video = (p.parent / row["video"]).resolve()
        if not video.is_file():
            raise InputError(f"{where}: video {row['video']} not found (looked for {video})")
        queries.append(MomentQuery(str(video), row["query"].strip(), start, end))
    if not queries:
        raise InputError(f"{p} holds no queries")
    return MomentSet(p.stem, queries)


@dataclass
class MomentResult:
    model: str
    dataset: str
    queries: int
    videos: int
    recall: dict[str, float]  # {"R@1 IoU0.5": ..., "R@1 IoU0.7": ...}
    mean_iou: float
    fusion: str
    modality: str | None
    per_query: list[dict[str, Any]] = field(default_factory=list)  # query, video, truth, predicted, iou
    failures: list[dict[str, str]] = field(default_factory=list)  # videos that could not be indexed

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "queries": self.queries, "videos": self.videos,
                "recall": self.recall, "mean_iou": self.mean_iou, "fusion": self.fusion, "modality": self.modality,
                "failures": self.failures}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_moments(data: MomentSet, encoder: Encoder, *, fusion: str = "weighted", modality: str | None = None,
                     speech: bool = True, progress: Callable[[int, int], None] | None = None) -> MomentResult:
    from polymodal.library import Library
    from polymodal.library.media_ingest import MediaOptions
    from polymodal.library.moments import check

    check(fusion, modality)
    with tempfile.TemporaryDirectory(prefix="polymodal-eval-moments-") as tmp:
        lib = Library.open(Path(tmp) / "library", model=encoder)
        lib.media_options = MediaOptions(speech=speech)
        report = lib.add(data.videos, prune=False, progress=progress)
        failed = {f.path: f.reason for f in report.failures}
        ious, rows = [], []
        for q in data.queries:
            hits = [] if q.video in failed else lib.search(text=q.query, k=1, path=glob.escape(q.video),
                                                           fusion=fusion, modality=modality)
            top = hits[0] if hits else None
            predicted: tuple[float, float] | None = None
            if top is not None and top.start is not None and top.end is not None:
                predicted = (top.start, top.end)
            iou = temporal_iou(predicted, (q.start, q.end)) if predicted is not None else 0.0
            ious.append(iou)
            rows.append({"query": q.query, "video": q.video, "truth": [q.start, q.end],
                         "predicted": list(predicted) if predicted else None, "iou": round(iou, 4)})
    arr = np.asarray(ious)
    return MomentResult(
        model=encoder.name, dataset=data.name, queries=len(data.queries), videos=len(data.videos),
        recall={f"R@1 IoU{t}": recall_at_iou(arr, t) for t in IOU_THRESHOLDS}, mean_iou=float(arr.mean()),
        fusion=fusion, modality=modality, per_query=rows,
        failures=[{"path": p, "reason": r} for p, r in sorted(failed.items())],
    )


def moments_report(results: list[MomentResult], out: Path) -> Path:
    """report.md (table, R@1 against the IoU threshold, IoU histogram) and results.json in ``out``."""
    from polymodal.eval.report import _pyplot, markdown_table, save_figure, write_report

    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    thresholds = np.linspace(0.05, 1.0, 20)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for r in results:
        ious = np.array([q["iou"] for q in r.per_query])
        axes[0].plot(thresholds, [recall_at_iou(ious, float(t)) for t in thresholds], marker=".", label=r.model)
        axes[1].hist(ious, bins=np.linspace(0, 1, 11), alpha=0.5, label=r.model)
    axes[0].set_xlabel("IoU threshold")
    axes[0].set_ylabel("R@1")
    axes[0].set_ylim(0, 1.02)
    axes[0].grid(alpha=0.3)
    axes[1].set_xlabel("IoU of the top moment")
    axes[1].set_ylabel("queries")
    axes[1].legend(fontsize=8)
    save_figure(fig, out / "moments_iou.png")
    keys = list(results[0].recall)
    lines = [f"# Moment retrieval: {results[0].dataset}", "",
             f"{results[0].queries} queries over {results[0].videos} videos; fusion {results[0].fusion}"
             + (f", modality {results[0].modality}" if results[0].modality else "") + ". Each query searches its "
             "own video; its top moment is compared with the truth by temporal IoU.", ""]
    lines += markdown_table(["model", *keys, "mean IoU"],
                            [[r.model, *(f"{100 * r.recall[k]:.1f}" for k in keys), f"{r.mean_iou:.3f}"]
                             for r in results])
    lines += ["", "![R@1 by IoU threshold, and the IoU histogram](moments_iou.png)", ""]
    for r in results:
        if r.failures:
            lines += [f"Videos {r.model} could not index:", ""] + [f"- {f['path']}: {f['reason']}"
                                                                   for f in r.failures] + [""]
    return write_report(out, lines, [r.to_dict() for r in results])
