"""Fusing visual and speech evidence into ranked moments (issue #5), on plain candidate lists.

A *unit* is one piece of evidence for a query: a photo or a visual segment (visual modality, scored by the
image embedding) or a transcript segment (speech modality, scored by the text embedding). Raw cosines of the
two modalities live on different scales (text-to-image cosines of CLIP-style models cluster near 0.2-0.3,
text-to-text ones spread much wider), so each modality is normalised on its own before they are combined:

- each unit's cosine becomes a z-score against a reference distribution of its modality (the query's scores
  on unrelated material, see ``calibration``), and then *evidence* = log(1 + max(z, 0)): zero for anything
  not above the background, and logarithmic above it, because the tails differ by modality (a text query
  stands out from unrelated pictures by 20 spreads where it stands out from unrelated sentences by 5), and
  the log keeps each modality's order while bringing those tails to one scale;
- **weighted** (default): a unit's fused score is the weighted sum of its own evidence and the *support* of
  the other modality at the same time in the same item (a visual segment during which the matching words
  are spoken): that modality's best evidence there. Support flows only between units that both stand out
  (z >= ``SUPPORT_MIN_Z``): faint evidence (an unrelated sentence a little above the background) cannot lift
  a moment above a photo that clearly matches, and a unit that does not match by itself (the shot on screen
  while the words are said) cannot borrow the words' evidence and take the moment's time range from them.
  Two units that support each other get the same fused score, and the one standing out more in its own
  modality leads the moment. Evidence a unit cannot have (a photo has no speech) adds nothing.
- **rrf**: reciprocal rank fusion (Cormack et al., 2009), sum over modalities of 1 / (60 + rank), with the
  other modality's best overlapping unit standing in for "the same document", as Twelve Labs fuses per
  segment. A modality's result list holds only its units clearly above the background (z >= 2): RRF
  counts presence in a list, and in a small library every unit would otherwise be "in" both lists.

Units are then taken best first and merged into moments: a unit overlapping a moment of the same item is
absorbed by it (an overlapping unit of the same modality that scores nearly as well widens it), and an
adjacent one (gap at most ``MERGE_GAP``) of the same modality that scores nearly as well extends it. The
moment keeps the time range of the evidence that found it: a spoken phrase's moment is when it is said,
not the whole shot it is said in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from polymodal.errors import InputError
from polymodal.library import relevance as rel

FUSIONS = ("weighted", "rrf")
MODALITIES = ("visual", "speech")
#: RRF's constant k, as in the paper and most search engines
RRF_K = 60
#: default weights of weighted fusion, per modality
WEIGHTS = {"visual": 1.0, "speech": 1.0}
#: a unit counts in its modality's RRF list only from this z-score (clearly above unrelated material)
RRF_MIN_Z = 2.0
#: the other modality supports a unit (weighted fusion) only from this z-score (clearly above the background)
SUPPORT_MIN_Z = 2.0
#: seconds between two units of the same modality for them to count as adjacent
MERGE_GAP = 1.0
#: a unit joins a moment only if its own evidence is at least this (z >= 2: clearly above the background) ...
MERGE_MIN_EVIDENCE = float(np.log1p(2.0))
#: ... and at most this far below the evidence of the unit that found the moment (a factor e^0.5 in 1 + z)
MERGE_MARGIN = 0.5


@dataclass
class Unit:
    item_id: str
    modality: str  # visual or speech
    score: float  # raw cosine similarity to the query
    start: float | None = None  # None for photos (no time)
    end: float | None = None
    segment: str | None = None  # segment id, None for photos
    text: str | None = None  # speech: what was said
    z: float = 0.0  # normalised score within its modality
    rank: int = 0  # 1-based rank within its modality
    fused: float = 0.0

    @property
    def evidence(self) -> float:
        return rel.evidence(self.z)

    @property
    def support(self) -> float:
        """What this unit adds to an overlapping unit of the other modality (weighted fusion)."""
        return self.evidence if self.z >= SUPPORT_MIN_Z else 0.0


@dataclass
class Moment:
    item_id: str
    score: float  # the fused score of the unit that found it
    modality: str  # of that unit
    z: float
    start: float | None = None
    end: float | None = None
    units: list[Unit] = field(default_factory=list)

    @property
    def evidence(self) -> float:
        return rel.evidence(self.z)

    @property
    def best_visual(self) -> Unit | None:
        visual = [u for u in self.units if u.modality == "visual" and u.segment is not None]
        return max(visual, key=lambda u: u.z) if visual else None


def check(fusion: str, modality: str | None) -> None:
    if fusion not in FUSIONS:
        raise InputError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")


def normalise(units: Sequence[Unit], reference: Mapping[str, Sequence[float]] | None = None) -> None:
    """Set ``z`` and ``rank`` of every unit within its modality.

    ``reference``: per modality, the scores to take the mean and spread from (default: the units' own).
    """
    by_mod: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        by_mod[u.modality].append(u)
    for mod, group in by_mod.items():
        ref = reference[mod] if reference and mod in reference else [u.score for u in group]
        zs = rel.zscores([u.score for u in group], ref)
        for u, z in zip(group, zs):
            u.z = float(z)
        for rank, u in enumerate(sorted(group, key=lambda u: -u.score), 1):
            u.rank = rank


def _overlaps(a: Unit, b: Unit) -> bool:
    assert a.start is not None and a.end is not None and b.start is not None and b.end is not None
    return min(a.end, b.end) - max(a.start, b.start) > 1e-6


def fuse(units: Sequence[Unit], method: str = "weighted", weights: dict[str, float] | None = None) -> None:
    """Set ``fused`` of every (normalised) unit from its own evidence and the other modality's at its time."""
    weights = weights or WEIGHTS
    timed: dict[tuple[str, str], list[Unit]] = defaultdict(list)
    for u in units:
        if u.start is not None:
            timed[(u.item_id, u.modality)].append(u)
    for u in units:
        other = None
        if u.start is not None:
            other_mod = "speech" if u.modality == "visual" else "visual"
            near = [o for o in timed.get((u.item_id, other_mod), ()) if _overlaps(u, o)]
            other = max(near, key=lambda o: o.z) if near else None
        if method == "rrf":
            u.fused = sum(1.0 / (RRF_K + x.rank) for x in (u, other) if x is not None and x.z >= RRF_MIN_Z)
        else:
            u.fused = weights.get(u.modality, 1.0) * u.evidence
            if other is not None and u.z >= SUPPORT_MIN_Z:
                u.fused += weights.get(other.modality, 1.0) * other.support


def _joins(u: Unit, m: Moment) -> bool:
    return u.modality == m.modality and u.evidence >= max(MERGE_MIN_EVIDENCE, m.evidence - MERGE_MARGIN)


def merge(units: Sequence[Unit], limit: int) -> list[Moment]:
    """Units (fused) into at most ``limit`` moments, best first; see the module docstring for the rules."""
    ordered = sorted(units, key=lambda u: (-u.fused, -u.z, u.item_id, u.start or 0.0))
    moments: list[Moment] = []
    by_item: dict[str, list[Moment]] = defaultdict(list)
    for u in ordered:
        if u.start is None or u.end is None:
            if len(moments) < limit:
                moments.append(Moment(u.item_id, u.fused, u.modality, u.z, units=[u]))
            continue
        overlapping = None
        joined: list[Moment] = []  # adjacent moments this unit joins, best first (moments are made best first)
        for m in by_item[u.item_id]:
            assert m.start is not None and m.end is not None
            overlap = min(m.end, u.end) - max(m.start, u.start)
            if overlap > 1e-6:
                overlapping = m
                break
            if -overlap <= MERGE_GAP and _joins(u, m):
                joined.append(m)
        if overlapping is not None:
            overlapping.units.append(u)
            if _joins(u, overlapping):
                assert overlapping.start is not None and overlapping.end is not None
                overlapping.start, overlapping.end = min(overlapping.start, u.start), max(overlapping.end, u.end)
            continue
        if joined:
            # A unit bridging two moments makes them one: the better keeps its score and takes the others in.
            home, rest = joined[0], joined[1:]
            assert home.start is not None and home.end is not None
            starts = [u.start, *(m.start for m in rest if m.start is not None)]
            ends = [u.end, *(m.end for m in rest if m.end is not None)]
            home.start, home.end = min(home.start, *starts), max(home.end, *ends)
            home.units += [u, *(x for m in rest for x in m.units)]
            for other in rest:
                moments.remove(other)
                by_item[u.item_id].remove(other)
            continue
        if len(moments) < limit:
            m = Moment(u.item_id, u.fused, u.modality, u.z, u.start, u.end, [u])
            moments.append(m)
            by_item[u.item_id].append(m)
    return moments
