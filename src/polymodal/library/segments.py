"""The time-coded side of a library: segments of video and audio items, and their media metadata.

Two tables beside ``items`` (schema version 2; a version 1 library gains them at its first video):

- ``segments``: one row per visual segment (a stretch of one shot, with the mean embedding of a few of its
  frames and a thumbnail) and per speech segment (a stretch of transcript, embedded with the library's text
  encoder), keyed by ``key`` = ``<item id>:<segment id>``. Searches for moments read it.
- ``media``: one row per video or audio item: duration, frame rate, codecs, rotation, spoken language.

Segments are written before their item, so a process killed between the two commits leaves segments of an
item that does not exist yet: searches only show segments whose item exists, the next run rewrites them
(by key, so never twice), and ``prune_orphans`` deletes what no item claims any more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polymodal.library.store import Store, sql_in, sql_str

SEGMENTS_PREFIX, MEDIA = "segments", "media"
VISUAL, SPEECH = "visual", "speech"
#: candidates read per modality for one search (their scores also give the normalisation of that modality)
POOL = 1000


def segments_schema(dim: int) -> Any:
    import pyarrow as pa

    return pa.schema([
        pa.field("key", pa.string(), nullable=False),  # <item id>:<segment id>, unique
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),  # v0003 (visual), s0001 (speech): unique within the item
        pa.field("kind", pa.string(), nullable=False),  # visual or speech
        pa.field("start", pa.float64()),  # seconds from the start of the media
        pa.field("end", pa.float64()),
        pa.field("shot", pa.int32()),  # visual: the shot it belongs to
        pa.field("text", pa.string()),  # speech: what was said
        pa.field("words", pa.string()),  # speech: JSON [[start, end, word], ...]
        pa.field("frame_times", pa.list_(pa.float64())),  # visual: the frames embedded
        pa.field("thumbnail", pa.binary()),  # visual: WebP of its middle frame
        pa.field("vector", pa.list_(pa.float32(), dim)),
    ])


def media_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("kind", pa.string()),  # video or audio
        pa.field("duration", pa.float64()),
        pa.field("fps", pa.float64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("codec", pa.string()),
        pa.field("audio_codec", pa.string()),
        pa.field("container", pa.string()),
        pa.field("rotation", pa.int32()),
        pa.field("language", pa.string()),  # spoken language, when there is speech
        pa.field("speech_model", pa.string()),
        pa.field("shots", pa.int32()),
        pa.field("speech_error", pa.string()),  # why a video's sound was not transcribed, else null
    ])


@dataclass
class SegmentRow:
    id: str
    kind: str  # VISUAL or SPEECH
    start: float
    end: float
    vector: np.ndarray
    shot: int | None = None
    text: str | None = None
    words: str | None = None
    frame_times: list[float] = field(default_factory=list)
    thumbnail: bytes | None = None


def segments_table_name(store: Store) -> str:
    """``segments`` beside ``items``; a reindex's ``items_<tag>`` gets ``segments_<tag>``, switched with it."""
    return SEGMENTS_PREFIX + store.meta.items_table[len("items"):]


def segments_table(store: Store, create: bool = False, name: str | None = None) -> Any | None:
    """The segments table paired with the library's items table (or the one called ``name``)."""
    name = name or segments_table_name(store)
    schema = segments_schema(store.meta.dim) if create and store.meta.dim else None
    return store._open(name, schema)


def media_table(store: Store, create: bool = False) -> Any | None:
    return store._open(MEDIA, media_schema() if create else None)


def write(store: Store, item_id: str, segments: Sequence[SegmentRow], media: dict[str, Any] | None,
          table: str | None = None) -> None:
    """Replace the segments and media row of one item (idempotent: keyed, so a rerun never duplicates).

    ``table``: another segments table than the library's current one (a reindex fills its new one).
    """
    import pyarrow as pa

    assert store.meta.dim, "the library's model is fixed before anything is written"
    if store.meta.schema_version < 2:
        from polymodal.library.schema import write_meta

        store.meta.schema_version = 2  # an older polymodal would show these items without their moments
        write_meta(store.root, store.meta)
    seg_table = segments_table(store, create=True, name=table)
    assert seg_table is not None
    rows = [{
        "key": f"{item_id}:{s.id}", "item_id": item_id, "id": s.id, "kind": s.kind, "start": float(s.start),
        "end": float(s.end), "shot": s.shot, "text": s.text, "words": s.words, "frame_times": s.frame_times,
        "thumbnail": s.thumbnail, "vector": np.asarray(s.vector, np.float32).tolist(),
    } for s in segments]
    seg_table.delete(f"item_id = {sql_str(item_id)}")
    if rows:
        dim = len(rows[0]["vector"])
        seg_table.add(pa.Table.from_pylist(rows, schema=segments_schema(dim)))
    if media is None:
        store.sync()  # the segments' commits are durable on their own (the media upsert syncs otherwise)
        return
    mt = media_table(store, create=True)
    store.upsert(mt, "item_id", pa.Table.from_pylist([{**media, "item_id": item_id}], schema=media_schema()))


def speech_rows(store: Store, item_id: str) -> list[dict[str, Any]]:
    """The speech segments of one item, in time order, without vectors (what a reindex re-embeds)."""
    table = segments_table(store)
    if table is None:
        return []
    data = store.scan(table, ["id", "start", "end", "text", "words"],
                      f"item_id = {sql_str(item_id)} AND kind = {sql_str(SPEECH)}")
    return sorted(data.to_pylist(), key=lambda r: r["start"])


def drop_stale(store: Store, keep: str) -> None:
    """Drop segments tables other than ``keep`` (left by a reindex that switched, or was killed before)."""
    for name in store._table_names():
        if (name == SEGMENTS_PREFIX or name.startswith(SEGMENTS_PREFIX + "_")) and name != keep:
            store.drop(name)


def count(store: Store) -> int:
    table = segments_table(store)
    return int(table.count_rows()) if table is not None else 0


def search(store: Store, vector: np.ndarray, kind: str, limit: int = POOL) -> list[dict[str, Any]]:
    """The ``limit`` segments of ``kind`` nearest to ``vector``, with ``score`` (cosine) and no vector."""
    table = segments_table(store)
    if table is None:
        return []
    # exact search (the segments table has no vector index), read like the items table (pylance when local)
    rows = table.nearest(np.asarray(vector, np.float32), limit, ["item_id", "id", "kind", "start", "end", "text"],
                         where=f"kind = {sql_str(kind)}").to_pylist()
    for r in rows:
        r["score"] = 1.0 - float(r.pop("_distance"))
    return rows


def of_items(store: Store, item_ids: Sequence[str], kind: str | None = None) -> list[dict[str, Any]]:
    """Every segment of these items (no vectors, no thumbnails), ordered by item and start."""
    table = segments_table(store)
    if table is None or not item_ids:
        return []
    where = sql_in("item_id", list(item_ids)) + (f" AND kind = {sql_str(kind)}" if kind else "")
    data = store.scan(table, ["item_id", "id", "kind", "start", "end", "shot", "text", "words"], where)
    return sorted(data.to_pylist(), key=lambda r: (r["item_id"], r["start"], r["id"]))


def thumbnail(store: Store, item_id: str, segment_id: str) -> bytes | None:
    table = segments_table(store)
    if table is None:
        return None
    data = store.scan(table, ["thumbnail"], f"key = {sql_str(f'{item_id}:{segment_id}')}")
    return data.column("thumbnail")[0].as_py() if data.num_rows else None


def media_info(store: Store, item_id: str) -> dict[str, Any] | None:
    table = media_table(store)
    if table is None:
        return None
    data = store.scan(table, None, f"item_id = {sql_str(item_id)}")
    return data.to_pylist()[0] if data.num_rows else None


def prune_orphans(store: Store) -> int:
    """Delete segments and media rows of items the library no longer holds as a video or audio; how many items
    they belonged to (``check`` calls such rows orphans)."""
    # Both tables are looked at: an audio file without speech has a media row and no segment.
    tables = [t for t in (segments_table(store), media_table(store)) if t is not None]
    if not tables:
        return 0
    owners = {i for t in tables for i in store.scan(t, ["item_id"]).column("item_id").to_pylist()}
    if not owners:
        return 0
    kept = store.items_by("id", sorted(owners), ["id", "kind"]).to_pylist()
    gone = sorted(owners - {r["id"] for r in kept if r["kind"] != "image"})
    if gone:
        for t in tables:
            store.delete(t, "item_id", gone)
    return len(gone)
