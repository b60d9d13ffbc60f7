"""The plain results a library hands back: the same types whatever the flags, ready for JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Hit:
    """One search result: an item of the library and how well it matched."""

    id: str  # stable item id (content hash prefix)
    path: str  # the item's first path; ``paths`` has all of them when the bytes exist more than once
    score: float  # cosine similarity of the item to the (combined) query, in [-1, 1]
    kind: str  # image, video or audio
    paths: tuple[str, ...] = ()
    date: datetime | None = None  # EXIF date taken, else file mtime
    width: int | None = None
    height: int | None = None
    camera: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    tags: tuple[str, ...] = ()
    # A moment inside a video or audio item (issue #5); all None for images and whole-item hits.
    start: float | None = None  # seconds from the start of the media
    end: float | None = None
    transcript: str | None = None  # the speech heard in [start, end], when there is any
    segment: str | None = None  # id of the visual segment whose thumbnail shows the moment (Library.segment_thumbnail)
    # How sure: the calibrated probability (0-1) that this is a right answer for a text query (relevance.py);
    # None for a query by example, which no labelled set calibrates.
    confidence: float | None = None
    # A stack: the id of the item this one is shown under (a camera RAW under the JPEG of the same shot); a
    # search shows the pair once, by the JPEG, unless only the RAW matches (e.g. --path "*.CR2").
    stack: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IndexReport:
    """What one ``index`` run did. Every file found lands in exactly one of the counts."""

    added: int = 0  # new content, embedded
    updated: int = 0  # a known path whose bytes changed, re-embedded
    moved: int = 0  # a new path for content whose old path is gone: recognised by hash, not re-embedded
    duplicates: int = 0  # a new path for content already in the library under another path
    removed: int = 0  # paths gone from disk and pruned from the library
    skipped: int = 0  # unchanged since the last run (same size and mtime), not read
    failed: int = 0  # could not be read or decoded; the reasons are in ``failures``
    failures: list[Failure] = field(default_factory=list)
    index_built: bool = False  # whether this run (re)built the ANN index
    #: videos indexed by their pictures only: their sound could not be transcribed (path, why); not failures
    #: (the item is searchable), but a search for their words finds nothing, so they are said here
    speech_failures: list[Failure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class DuplicateGroup:
    """Items that look the same. ``score`` is the lowest similarity linking the group (1.0: identical bytes)."""

    score: float
    items: tuple[Hit, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "items": [h.to_dict() for h in self.items]}


@dataclass(frozen=True)
class JobInfo:
    id: str
    kind: str
    state: str  # running, done, failed, interrupted
    started: datetime | None
    finished: datetime | None
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class Status:
    path: str
    items: int  # distinct contents
    files: int  # paths indexed (duplicates count once per path)
    model: str | None
    dim: int | None
    schema_version: int
    size_bytes: int  # on disk, whole library directory
    ann_index: bool  # whether searches go through an ANN index
    failures: list[Failure]
    last_job: JobInfo | None
    #: what each network of the model runs on (e.g. {"image": "onnx-int8", "text": "onnx-fp32"}); empty
    #: before the model's first export
    runtimes: dict[str, str] = field(default_factory=dict)
    #: videos whose sound could not be transcribed (path, why): indexed by their pictures only
    speech_failures: list[Failure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))
