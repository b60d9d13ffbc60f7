"""Search over a library holding video or audio: photos and timed moments ranked together.

Reads the candidates of each modality (photos and visual segments by the image embedding; transcript
segments by the text embedding), normalises and fuses them (``moments``), applies the item filters, and
returns ``Hit``s: photos as before, and moments with ``start``, ``end``, the ``transcript`` heard then and
the ``segment`` whose thumbnail shows it. A hit's ``score`` is then the fused score (a z-score for weighted
fusion, an RRF sum for ``rrf``), not a cosine.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np

from polymodal.errors import InputError
from polymodal.library import moments as mom
from polymodal.library import relevance as rel
from polymodal.library import segments as seg
from polymodal.library.search import Filters, check_filters, hits_from_arrow
from polymodal.library.store import Store, sql_in
from polymodal.library.types import Hit

_HIT_COLUMNS = ["id", "paths", "kind", "date", "width", "height", "camera", "latitude", "longitude", "tags"]


def has_moments(store: Store) -> bool:
    """Whether the library holds any segments (else plain item search answers exactly as before)."""
    return seg.count(store) > 0


def _and(*parts: str | None) -> str | None:
    kept = [f"({p})" for p in parts if p]
    return " AND ".join(kept) or None


def _allowed_items(store: Store, ids: set[str], filters: Filters) -> set[str]:
    """Of ``ids``, the items that exist and pass the filters (date, kind, tags, path glob)."""
    if not ids:
        return set()
    data = store.scan(store.items(), ["id", "paths"], _and(sql_in("id", sorted(ids)), filters.where()))
    return {r["id"] for r in data.to_pylist() if r["paths"] and filters.path_ok(list(r["paths"]))}


def moment_search(store: Store, vector: np.ndarray, k: int, filters: Filters, sort: str = "score",
                  exact: bool = False, fusion: str = "weighted", modality: str | None = None,
                  reference: dict[str, list[float]] | None = None, floor: bool = False,
                  calibrated: bool = True) -> list[Hit]:
    """Photos and moments for the query ``vector``.

    ``reference``: per modality, the query's scores on unrelated material (``calibration``), which set each
    modality's scale; without it, the candidates' own scores do (fine for large libraries only).
    ``calibrated`` (a text query against a reference): hits carry a ``confidence`` from their evidence, the
    fused score under weighted fusion, the leading unit's under RRF (relevance.py); ``floor`` then drops
    those under the floor.
    """
    if k < 1:
        raise InputError(f"-k must be at least 1, got {k}")
    check_filters(filters, sort)
    mom.check(fusion, modality)
    units: list[mom.Unit] = []
    pool: dict[str, list[float]] = {"visual": [], "speech": []}
    if modality in (None, "visual"):
        if filters.kind in (None, "image") and store.items() is not None:
            rows = store.vector_search(vector, seg.POOL, where=_and(filters.where(), "kind = 'image'"),
                                       exact=exact).to_pylist()
            for r in rows:
                score = 1.0 - float(r["_distance"])
                pool["visual"].append(score)
                if r["paths"] and filters.path_ok(list(r["paths"])):
                    units.append(mom.Unit(r["id"], "visual", score))
        for r in seg.search(store, vector, seg.VISUAL):
            pool["visual"].append(r["score"])
            units.append(mom.Unit(r["item_id"], "visual", r["score"], r["start"], r["end"], r["id"]))
    if modality in (None, "speech"):
        for r in seg.search(store, vector, seg.SPEECH):
            pool["speech"].append(r["score"])
            units.append(mom.Unit(r["item_id"], "speech", r["score"], r["start"], r["end"], r["id"], r["text"]))
    # Segments of items that are gone (or not yet committed) or filtered out are dropped here.
    timed_ids = {u.item_id for u in units if u.start is not None}
    allowed = _allowed_items(store, timed_ids, filters)
    units = [u for u in units if u.start is None or u.item_id in allowed]
    if not units:
        return []
    mom.normalise(units, reference or pool)
    mom.fuse(units, fusion)
    found = mom.merge(units, k)
    if filters.min_score is not None:
        found = [m for m in found if m.score >= filters.min_score]
    sure: dict[int, float] = {}
    if reference is not None and calibrated:
        sure = {id(m): rel.confidence(m.score if fusion == "weighted" else m.evidence) for m in found}
        if floor:
            found = [m for m in found if sure[id(m)] >= rel.FLOOR]
    hits = [dataclasses.replace(h, confidence=round(sure[key], 4)) if key in sure else h
            for key, h in _to_hits(store, found)]
    if sort == "date":
        hits.sort(key=lambda h: h.date or datetime.min.replace(tzinfo=UTC), reverse=True)
    return hits


def _to_hits(store: Store, found: list[mom.Moment]) -> list[tuple[int, Hit]]:
    """(``id`` of the moment, its hit) for each moment whose item still exists."""
    ids = sorted({m.item_id for m in found})
    data = store.items_by("id", ids, _HIT_COLUMNS) if ids else None
    base = {h.id: h for h in hits_from_arrow(data, [0.0] * data.num_rows)} if data is not None else {}
    timed = sorted({m.item_id for m in found if m.start is not None})
    speech: dict[str, list[dict]] = {}
    visual: dict[str, list[dict]] = {}
    for r in seg.of_items(store, timed):
        (speech if r["kind"] == seg.SPEECH else visual).setdefault(r["item_id"], []).append(r)
    out = []
    for m in found:
        hit = base.get(m.item_id)
        if hit is None:
            continue  # removed between the search and this read
        if m.start is None or m.end is None:
            out.append((id(m), dataclasses.replace(hit, score=round(m.score, 6))))
            continue
        start, end = m.start, m.end
        said = [r["text"] for r in speech.get(m.item_id, ()) if min(end, r["end"]) - max(start, r["start"]) > 1e-6
                and r["text"]]
        best = m.best_visual
        segment = best.segment if best is not None else None
        if segment is None:  # found by speech: the visual segment on screen at its middle
            mid = (start + end) / 2
            on_screen = [r for r in visual.get(m.item_id, ()) if r["start"] <= mid < r["end"]]
            segment = on_screen[0]["id"] if on_screen else None
        out.append((id(m), dataclasses.replace(hit, score=round(m.score, 6), start=round(start, 3),
                                               end=round(end, 3), transcript=" ".join(said) or None,
                                               segment=segment)))
    return out
