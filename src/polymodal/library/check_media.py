"""``check`` for the time-coded side of a library: the ``segments`` and ``media`` tables of video and audio.

The invariants follow from how ``media_ingest`` and ``segments.write`` build the rows:

- every segment and media row belongs to a video or audio item. A row of an item that does not exist is
  what a run killed between an item's segments commit and its item commit leaves (segments go first), or a
  removal whose ``prune_orphans`` has not run yet; ``repair`` drops such rows;
- a video or audio item has its media row, a video at least one visual segment, and the segment ids of
  each kind are numbered from 0 without a gap (``visual_segments`` and ``speech_segments`` number only what
  they keep), so a lost row shows unless it was the last of its kind;
- each segment has a unit vector at the library's width and sane times; a visual segment has a thumbnail
  that decodes (speech segments store none).

Anything wrong inside a video or audio item's segments is rebuilt by indexing its file again (``repair``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from polymodal.library.findings import ERROR, CheckReport, vector_problems
from polymodal.library.segments import SPEECH, VISUAL

#: seconds a segment may end past its item's duration: speech times are rounded to milliseconds after
#: being clamped to the audio (``speech.transcribe._clamp``), so they can pass it by half of one
_TIME_SLACK = 1e-3


def check_segments(items: Any, segs: Any, media: Any, bad_thumbnails: dict[str, str], dim: int,
                   report: CheckReport) -> None:
    """Segment and media rows against the items read before them (``items`` None: there is no items table).

    ``segs`` and ``media`` as ``check._read_whole`` gives them (None when the table does not exist);
    ``bad_thumbnails``: why stored segment thumbnails do not decode, by segment key.
    """
    kinds = dict(zip(items.column("id").to_pylist(), items.column("kind").to_pylist())) if items is not None else {}
    timed = {iid: kind for iid, kind in kinds.items() if kind != "image"}  # video and audio items
    durations = _check_media_rows(media, timed, kinds, report)
    rows = (segs.select(["key", "item_id", "id", "kind", "start", "end", "has_thumbnail"]).to_pylist()
            if segs is not None else [])
    for key, n in Counter(r["key"] for r in rows).items():
        if n > 1:
            report.add(ERROR, "duplicate_segment", key, f"segment {key} is stored {n} times")
    for iid, n in Counter(r["item_id"] for r in rows if r["item_id"] not in timed).items():
        report.add(ERROR, "orphan_segment", iid, f"{n} segment row(s) belong to item {iid}, which is "
                   f"{_not_timed(iid, kinds)}")
    # (the rows of an orphan are reported once, as such, whatever else is wrong with them)
    if rows:
        keys = [r["key"] for r in rows]
        item_of = {r["key"]: r["item_id"] for r in rows}
        for key, reason in vector_problems(segs.column("vector").combine_chunks(), keys, dim):
            if item_of[key] in timed:
                report.add(ERROR, "bad_segment_vector", key, f"segment {key}: {reason}")
    numbers: dict[tuple[str, str], set[int]] = defaultdict(set)  # (item, kind) -> the numbers of its segment ids
    for r in rows:
        iid = r["item_id"]
        if iid not in timed:
            continue
        if r["id"][1:].isdigit():
            numbers[(iid, r["kind"])].add(int(r["id"][1:]))
        why = _time_problem(r, timed[iid], durations.get(iid))
        if why:
            report.add(ERROR, "bad_segment_time", r["key"], f"segment {r['key']}: {why}")
        why = "no thumbnail" if r["kind"] == VISUAL and not r["has_thumbnail"] else bad_thumbnails.get(r["key"])
        if why:
            report.add(ERROR, "bad_segment_thumbnail", r["key"], f"segment {r['key']}: {why}")
    for iid, kind in timed.items():
        if kind == "video" and not numbers.get((iid, VISUAL)):
            report.add(ERROR, "missing_segments", iid, f"video item {iid} has no visual segment")
    for (iid, kind), got in numbers.items():
        prefix = "v" if kind == VISUAL else "s"
        gaps = [f"{prefix}{n:04d}" for n in range(max(got)) if n not in got]
        if gaps:
            report.add(ERROR, "segment_gap", iid, f"item {iid} lacks segment(s) {', '.join(gaps[:5])}"
                       f"{' ...' if len(gaps) > 5 else ''} (its {kind} segments are numbered without gaps)")


def _check_media_rows(media: Any, timed: dict[str, str], kinds: dict[str, str],
                      report: CheckReport) -> dict[str, float | None]:
    """One media row per video or audio item, and none of anything else; each item's duration."""
    durations: dict[str, float | None] = {}
    for row in media.select(["item_id", "duration"]).to_pylist() if media is not None else []:
        iid = row["item_id"]
        if iid in timed:
            durations[iid] = row["duration"]
        else:
            report.add(ERROR, "orphan_media", iid, f"a media row belongs to item {iid}, which is "
                       f"{_not_timed(iid, kinds)}")
    for iid, kind in timed.items():
        if iid not in durations:
            report.add(ERROR, "missing_media", iid, f"{kind} item {iid} has no media row")
    return durations


def _not_timed(iid: str, kinds: dict[str, str]) -> str:
    return "a photo" if iid in kinds else "not in the library"


def _time_problem(row: dict[str, Any], item_kind: str, duration: float | None) -> str | None:
    start, end = row["start"], row["end"]
    if start is None or end is None or not math.isfinite(start) or not math.isfinite(end):
        return f"times {start}-{end} are not numbers"
    # A visual segment is a non-empty stretch of a shot; a speech segment may be empty, since Whisper's times
    # are clamped to the audio and the last one can meet the end.
    if start < 0 or end < start or (row["kind"] == VISUAL and end == start):
        return f"runs from {start} s to {end} s"
    # The duration is the picture's: a video's sound track (and so its speech) may run a little longer.
    bounded = row["kind"] == VISUAL or (row["kind"] == SPEECH and item_kind == "audio")
    if bounded and duration is not None and end > duration + _TIME_SLACK:
        return f"ends at {end} s, after the end of its {item_kind} ({duration} s)"
    return None
