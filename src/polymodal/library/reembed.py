"""``reindex``: new embeddings for every item, from its files, into a fresh table switched in atomically.

Each item is re-read from the first of its paths whose bytes still hash to the item; items none of whose
files are left (or readable) are dropped and reported as failures, since they cannot be embedded again.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from polymodal.errors import ImageDecodeError
from polymodal.library import segments
from polymodal.library.ingest import ProgressCallback, content_hash, read_file
from polymodal.library.media_ingest import MediaOptions, reembed_media
from polymodal.library.schema import ITEMS, items_schema, write_meta
from polymodal.library.store import Store
from polymodal.library.types import Failure, IndexReport
from polymodal.models.base import Encoder

_BATCH = 64


def _load(row: dict[str, Any], encoder: Encoder, raw: dict[str, bytes]) -> tuple[Any, str | None]:
    """The encoder input for an item, or the reason none of its files gives it."""
    reason = "no file left"
    for path in row["paths"]:
        try:
            data = read_file(raw.get(path) or path.encode())
        except OSError as exc:
            reason = f"cannot read {path}: {exc.strerror or exc}"
            continue
        if content_hash(data) != row["hash"]:
            reason = f"{path} has changed since it was indexed"
            continue
        try:
            return encoder.preprocess_image(encoder.load_image(data)), None
        except ImageDecodeError as exc:
            reason = exc.reason
        except Exception as exc:  # noqa: BLE001 - this item is dropped and reported; the others go on
            reason = f"cannot process {path}: {type(exc).__name__}: {exc}"
    return None, reason


def _drop_stale_tables(store: Store) -> None:
    for name in store._table_names():
        # left by a reindex killed before it switched (items_<new>), or after it switched but before it
        # dropped the old table (which may be the original ``items``)
        if (name == ITEMS or name.startswith(f"{ITEMS}_")) and name != store.meta.items_table:
            store.drop(name)


def reembed(store: Store, encoder: Encoder, *, progress: ProgressCallback | None = None,
            media: MediaOptions | None = None) -> IndexReport:
    import pyarrow as pa

    report = IndexReport()
    _drop_stale_tables(store)
    old = store.items()
    new_name = f"{ITEMS}_{uuid.uuid4().hex[:8]}"
    new_segments = segments.SEGMENTS_PREFIX + new_name[len(ITEMS):]  # switched together with the items table
    new = store.create_items_table(new_name, encoder.dim)
    schema = items_schema(encoder.dim)
    if old is None:
        rows: list[dict[str, Any]] = []
    else:
        rows = store.scan(old, [c for c in schema.names if c != "vector"]).to_pylist()
    files = store.scan(store.files(), ["path", "path_raw"], "item_id IS NOT NULL")
    raw = dict(zip(files.column("path").to_pylist(), files.column("path_raw").to_pylist())) if files.num_rows else {}
    total = len(rows)
    if progress:
        progress(0, total)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, total, _BATCH):
            batch = rows[start: start + _BATCH]
            loaded = list(pool.map(lambda r: _load(r, encoder, raw) if r["kind"] == "image" else
                                   reembed_media(store, r, encoder, raw, new_segments, media or MediaOptions()),
                                   batch))
            keep = []
            pixels = []
            done_rows: list[dict[str, Any]] = []
            for row, (px, reason) in zip(batch, loaded):
                if px is None:
                    report.failed += 1
                    report.failures.append(Failure(row["paths"][0] if row["paths"] else row["id"], reason or ""))
                    report.removed += 1
                    continue
                if row["kind"] != "image":  # a video or audio item: already embedded, px is its vector
                    row["vector"] = px.tolist()
                    done_rows.append(row)
                    continue
                keep.append(row)
                pixels.append(px)
            if pixels:
                emb = np.asarray(encoder._embed_image_batch(pixels), np.float32)
                emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
                for row, vec in zip(keep, emb):
                    row["vector"] = vec.tolist()
            if keep or done_rows:
                new.add(pa.Table.from_pylist(keep + done_rows, schema=schema))
                report.updated += len(keep) + len(done_rows)
            if progress:
                progress(min(start + _BATCH, total), total)
    old_name = store.meta.items_table
    store.meta.items_table = new_name
    from polymodal.models.bundle import feature_space

    store.meta.model, store.meta.backend, store.meta.dim = feature_space(encoder), encoder.info.backend, encoder.dim
    store.sync()  # the new table must be on disk before library.json points to it
    write_meta(store.root, store.meta)  # the switch: readers opening from now on see the new table
    if removed_ids := [r["id"] for r in rows if "vector" not in r]:
        store.delete(store.files(), "item_id", removed_ids)
    store.drop(old_name)
    segments.drop_stale(store, keep=new_segments)
    return report
