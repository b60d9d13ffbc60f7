"""Stacks: a camera RAW file and the JPEG (or HEIC) the camera wrote beside it are one shot, two items.

Each stays its own item (its own content hash, embedding and paths, searchable by path), and the RAW's
``stack`` names the JPEG's item: a search shows the pair once, by the JPEG. Pairs are found by name, as
cameras write them: the same folder and file stem, one RAW extension and one shown format
(``IMG_0001.CR2`` + ``IMG_0001.JPG``). Recomputed after every index run, so a pair whose JPEG is deleted
comes apart.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from polymodal.media.raw import RAW_EXTENSIONS

#: the formats a camera writes beside its RAW file, the one a stack shows
SHOWN = (".jpg", ".jpeg", ".heic", ".heif")


def wanted(files: list[dict[str, Any]]) -> dict[str, str]:
    """{RAW item id: shown item id} for the pairs among ``files`` (rows of path and item_id)."""
    shots: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for row in files:
        if not row.get("item_id"):
            continue
        folder, name = os.path.split(row["path"])
        stem, ext = os.path.splitext(name)
        kind = "raw" if ext.lower() in RAW_EXTENSIONS else "shown" if ext.lower() in SHOWN else None
        if kind:
            shots[(folder, stem.lower())].setdefault(kind, row["item_id"])
    return {s["raw"]: s["shown"] for s in shots.values() if "raw" in s and "shown" in s and s["raw"] != s["shown"]}


def link(store: Any) -> int:
    """Set every item's ``stack`` to what the files show now; returns how many items changed."""
    import pyarrow as pa

    items = store.items()
    if items is None or "stack" not in items.column_names():
        return 0
    pairs = wanted(store.scan(store.files(), ["path", "item_id"]).to_pylist())
    current = {r["id"]: r["stack"] for r in store.scan(items, ["id", "stack"]).to_pylist()}
    changed = [i for i, s in current.items() if pairs.get(i) != s]
    if not changed:
        return 0
    schema = store.schema()
    rows = store.items_by("id", changed)
    stacks = pa.array([pairs.get(i) for i in rows.column("id").to_pylist()], type=pa.string())
    rows = rows.set_column(rows.schema.get_field_index("stack"), "stack", stacks)
    store.commit_items(rows.select(schema.names).cast(schema))
    return len(changed)
