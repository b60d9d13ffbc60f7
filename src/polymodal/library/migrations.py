"""Libraries that outlive a version: each change of the on-disk schema is a migration, applied in place when an
older library is opened by a process that can take the writer lock.

Before the first step, ``library.json`` and each table's current version are saved under ``.backup/``
(``library-vN.json``, ``tables-vN.json``). Lance keeps every table version until a compaction prunes it, so a
step that fails midway is undone by restoring each table to its saved version: the library is left exactly
as it was, at its old schema version, and the error says so. A process that cannot take the lock (another
is writing) reads the library at its old version; every reader tolerates the columns a migration adds being
absent, and every writer migrates first, under the lock.

Adding a migration: bump ``schema.SCHEMA_VERSION``, add the columns to ``schema``'s table schemas, and append
a ``Migration`` whose ``apply`` brings an existing library's tables to them.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polymodal.errors import LibraryError
from polymodal.library.schema import SCHEMA_VERSION, LibraryMeta, write_meta

log = logging.getLogger("polymodal")

BACKUP_DIR = ".backup"


@dataclass(frozen=True)
class Migration:
    to: int  # the schema version a library has after this step
    what: str  # one line, for the log and the error
    apply: Callable[[Any, LibraryMeta], None]  # (store, meta): changes the tables; meta is written after


def _video_tables(store: Any, meta: LibraryMeta) -> None:
    """Version 2 added the segments and media tables; they are made at a library's first video or audio file
    (segments.py), so an existing library needs nothing here."""


def _stack_column(store: Any, meta: LibraryMeta) -> None:
    """Version 3: items gain ``stack``, the item a file is shown under (a camera RAW under the JPEG of the same
    shot); null for every existing item until the next index run links the pairs it finds."""
    table = store.items()
    if table is not None and "stack" not in table.lancedb.schema.names:
        table.lancedb.add_columns({"stack": "CAST(NULL AS STRING)"})


MIGRATIONS = [
    Migration(2, "video and audio tables (made at the first video or audio file)", _video_tables),
    Migration(3, "items gain a stack column (a RAW file shown under the JPEG of its shot)", _stack_column),
]


def pending(meta: LibraryMeta) -> list[Migration]:
    return [m for m in MIGRATIONS if m.to > meta.schema_version]


def migrate(root: Path, meta: LibraryMeta, store: Any) -> bool:
    """Bring the library to ``SCHEMA_VERSION`` in place; the caller holds the writer lock. Returns whether
    anything was done. Raises LibraryError, with the library restored as it was, when a step fails."""
    steps = pending(meta)
    if not steps:
        return False
    before = meta.schema_version
    versions = _table_versions(store)
    backup = root / BACKUP_DIR
    backup.mkdir(exist_ok=True)
    shutil.copy2(root / "library.json", backup / f"library-v{before}.json")
    (backup / f"tables-v{before}.json").write_text(json.dumps(versions, indent=2) + "\n", encoding="utf-8")
    for step in steps:
        try:
            step.apply(store, meta)
        except Exception as exc:  # any failure is undone and reported the same way
            _restore(store, versions)
            meta.schema_version = before
            raise LibraryError(
                f"library {root} could not be migrated from schema version {before} to {step.to} "
                f"({step.what}): {exc}; it is as it was, and the older polymodal still reads it"
            ) from exc
        log.info("library %s: schema version %d -> %d: %s", root, meta.schema_version, step.to, step.what)
        meta.schema_version = step.to
    write_meta(root, meta)
    return meta.schema_version == SCHEMA_VERSION


def _table_versions(store: Any) -> dict[str, int]:
    out = {}
    for name in sorted(store.table_names()):
        table = store.table(name)
        if table is not None:
            out[name] = int(table.lancedb.version)
    return out


def _restore(store: Any, versions: dict[str, int]) -> None:
    for name, version in versions.items():
        table = store.table(name)
        if table is not None and int(table.lancedb.version) != version:
            table.lancedb.checkout(version)
            table.lancedb.restore()
