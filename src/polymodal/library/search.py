"""Turning a query vector and filters into hits: SQL pre-filters where LanceDB can apply them, the rest after.

Date, kind and tag filters run inside LanceDB before ranking (``prefilter``), so ``-k 10 --after 2020``
returns ten hits from 2020 on, not the 2020 hits among the global top ten. Path globs are matched in
Python on every path of an item, fetching more candidates until enough match or none are left.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from polymodal.errors import InputError
from polymodal.library import relevance as rel
from polymodal.library.store import Store, sql_str
from polymodal.library.types import Hit

KINDS = ("image", "video", "audio")
SORTS = ("score", "date")


@dataclass(frozen=True)
class Filters:
    after: datetime | None = None  # date >= after (EXIF date taken, else mtime)
    before: datetime | None = None  # date < before
    path: str | None = None  # glob matched against any of an item's paths
    kind: str | None = None  # image, video or audio
    tags: tuple[str, ...] = ()  # every one must be among the item's tags
    min_score: float | None = None
    exclude_ids: tuple[str, ...] = ()  # e.g. the query item itself, for ``similar``

    def where(self) -> str | None:
        parts = []
        if self.after is not None:
            parts.append(f"date >= {_sql_time(self.after)}")
        if self.before is not None:
            parts.append(f"date < {_sql_time(self.before)}")
        if self.kind is not None:
            parts.append(f"kind = {sql_str(self.kind)}")
        for tag in self.tags:
            parts.append(f"array_has(tags, {sql_str(tag)})")
        if self.exclude_ids:
            parts.append(f"id NOT IN ({', '.join(sql_str(i) for i in self.exclude_ids)})")
        return " AND ".join(parts) or None

    def path_ok(self, paths: list[str]) -> bool:
        if not self.path:
            return True
        pats = [self.path] if self.path.startswith(("/", "*")) else [self.path, "*/" + self.path]
        return any(fnmatch.fnmatchcase(p, pat) for p in paths for pat in pats)


def _sql_time(value: datetime) -> str:
    return f"TIMESTAMP '{value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}+00:00'"


_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")


def parse_date(value: str | datetime | None, option: str = "date") -> datetime | None:
    """``2021``, ``2021-07``, ``2021-07-14`` or full ISO 8601 -> an aware datetime (UTC when no zone given)."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    text = value.strip()
    m = _PARTIAL.match(text)
    try:
        if m:
            return datetime(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1), tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None:
        raise InputError(f"{option} {value!r} is not a date; use YYYY, YYYY-MM, YYYY-MM-DD or ISO 8601")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_filters(filters: Filters, sort: str) -> None:
    if filters.kind is not None and filters.kind not in KINDS:
        raise InputError(f"unknown type {filters.kind!r}; use one of {', '.join(KINDS)}")
    if sort not in SORTS:
        raise InputError(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    if filters.after and filters.before and filters.after >= filters.before:
        raise InputError("--after must be earlier than --before")


def hits_from_arrow(data: Any, scores: list[float] | None = None) -> list[Hit]:
    rows = data.to_pylist()
    out = []
    for i, r in enumerate(rows):
        score = scores[i] if scores is not None else 1.0 - float(r["_distance"])
        paths = tuple(r["paths"] or ())
        out.append(Hit(
            id=r["id"], path=paths[0] if paths else "", score=round(score, 6), kind=r["kind"], paths=paths,
            date=r.get("date"), width=r.get("width"), height=r.get("height"), camera=r.get("camera"),
            latitude=r.get("latitude"), longitude=r.get("longitude"), tags=tuple(r.get("tags") or ()),
            stack=r.get("stack"),
        ))
    return out


def with_confidence(hits: list[Hit], background: Sequence[float] | None, floor: bool) -> list[Hit]:
    """Hits with their ``confidence`` from the query's scores on the visual background (relevance.py), and
    without those under the floor when ``floor``; unchanged when there is no background (a query by example)."""
    if background is None:
        return hits
    zs = rel.zscores([h.score for h in hits], background)
    scored = [dataclasses.replace(h, confidence=round(rel.confidence(rel.evidence(float(z))), 4))
              for h, z in zip(hits, zs)]
    return [h for h in scored if h.confidence is not None and h.confidence >= rel.FLOOR] if floor else scored


def run_search(store: Store, vector: np.ndarray, k: int, filters: Filters, sort: str = "score",
               exact: bool = False, background: Sequence[float] | None = None, floor: bool = False) -> list[Hit]:
    """The ``k`` items nearest to ``vector`` that pass ``filters``; see ``with_confidence`` for the others."""
    if k < 1:
        raise InputError(f"-k must be at least 1, got {k}")
    check_filters(filters, sort)
    if store.items() is None:
        return []
    total = store.count_items()
    if total == 0:
        return []
    where = filters.where()
    limit = k if not filters.path else min(total, max(4 * k, 64))
    while True:
        data = store.vector_search(vector, limit, where=where, exact=exact)
        hits = [h for h in hits_from_arrow(data) if h.paths and filters.path_ok(list(h.paths))]
        shown = {h.id for h in hits}
        hits = [h for h in hits if not (h.stack and h.stack in shown)]  # a RAW beside its JPEG: shown once
        # Items mid-commit never show here (a table version is whole), but an item with no path is skipped
        # rather than shown as a blank line should one ever exist.
        if len(hits) >= k or data.num_rows < limit or limit >= total:
            break
        limit = min(total, limit * 4)
    if filters.min_score is not None:
        hits = [h for h in hits if h.score >= filters.min_score]
    hits = with_confidence(hits[:k], background, floor)  # the cut before the date sort: it orders what matches
    if sort == "date":
        hits.sort(key=lambda h: h.date or datetime.min.replace(tzinfo=UTC), reverse=True)
    return hits
