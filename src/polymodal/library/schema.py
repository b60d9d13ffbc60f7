"""What a library is on disk: the Arrow schemas of its tables and ``library.json``, which records how it was made.

A library directory holds ``library.json`` (format, schema version, model, dimension), a LanceDB database
in ``db/`` with three tables, and a ``.lock`` file that writers hold:

- ``items``: one row per distinct content (exact duplicates share a row and list all their paths), with the
  embedding, EXIF fields, tags and a WebP thumbnail. Searches read only this table, so each search sees one
  committed version of it.
- ``files``: one row per path seen by a scan: size and mtime for incremental re-scans, the item it holds,
  or the reason it failed.
- ``jobs``: one row per indexing run, with its counts and whether it finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polymodal.errors import LibraryError, NotALibraryError

#: bump when a table's columns change meaning; an older polymodal refuses a newer library.
#: 2: video and audio items, with the ``segments`` and ``media`` tables (``segments.py``); a version 1 library
#: opens as it is and gains those tables (and version 2) at its first video or audio file
#: 3: items gain ``stack`` (a RAW file shown under the JPEG of its shot). Older libraries are migrated in place
#: when opened (``migrations.py``).
SCHEMA_VERSION = 3
FORMAT = "polymodal-library"
META_FILE = "library.json"
DB_DIR = "db"
ITEMS, FILES, JOBS = "items", "files", "jobs"


@dataclass
class LibraryMeta:
    format: str = FORMAT
    schema_version: int = SCHEMA_VERSION
    model: str | None = None  # the encoder spec that made the embeddings; None until the first item is added
    backend: str | None = None  # the encoder's backend, for status output
    dim: int | None = None  # embedding width
    metric: str = "cosine"  # embeddings are L2-normalised; cosine keeps scores in [-1, 1] whatever the query
    items_table: str = ITEMS  # reindex builds a new table and switches this name in one atomic write
    vector_type: str = "float32"  # or float16: half the vector bytes, scores within ~1e-3 (docs/scale.md)
    storage: str | None = None  # where the tables live when not in db/ here: an s3:// URI (remote.py)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def read_meta(root: Path) -> LibraryMeta:
    path = root / META_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotALibraryError(f"{root} is not a polymodal library (no {META_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotALibraryError(f"{root} is not a usable polymodal library: cannot read {META_FILE}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NotALibraryError(f"{root} is not a polymodal library ({META_FILE} is not a polymodal library file)")
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise LibraryError(
            f"library {root} has schema version {version}, newer than this polymodal understands "
            f"({SCHEMA_VERSION}); upgrade polymodal"
        )
    known = set(LibraryMeta.__dataclass_fields__)
    return LibraryMeta(**{k: v for k, v in data.items() if k in known})


def write_meta(root: Path, meta: LibraryMeta) -> None:
    """Replace library.json atomically, so a reader sees the old or the new file, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".library.", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(meta), fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, root / META_FILE)
        # The rename itself is durable only once the directory is flushed too.
        dfd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


#: how embeddings can be stored; set when a library is created
VECTOR_TYPES = ("float32", "float16")


def new_meta(vector_type: str | None = None, storage: str | None = None) -> LibraryMeta:
    """The ``library.json`` of a new library, with its creation-time options checked."""
    from polymodal.errors import InputError
    from polymodal.library.remote import split_url

    if vector_type is not None and vector_type not in VECTOR_TYPES:
        raise InputError(f"vector type {vector_type!r} is not one of {', '.join(VECTOR_TYPES)}")
    if storage is not None:
        scheme, path = split_url(storage)
        if scheme != "s3":
            raise InputError(f"--storage {storage}: the library's tables can live on s3:// only")
        storage = f"{scheme}://{path}"
    return LibraryMeta(vector_type=vector_type or "float32", storage=storage)


def check_options(root: Path, meta: LibraryMeta, vector_type: str | None, storage: str | None) -> None:
    """An existing library keeps the options it was created with; asking for others is an error naming them."""
    from polymodal.errors import InputError

    if vector_type is not None and vector_type != meta.vector_type:
        raise InputError(f"library {root} stores {meta.vector_type} vectors; the vector type is chosen when a "
                         "library is created")
    if storage is not None and storage.rstrip("/") != (meta.storage or ""):
        raise InputError(f"library {root} keeps its tables in {meta.storage or root / DB_DIR}, not {storage}; "
                         "storage is chosen when a library is created")


def items_schema(dim: int, vector_type: str = "float32") -> Any:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),  # first 16 hex digits of the content hash
        pa.field("hash", pa.string(), nullable=False),  # BLAKE2b-128 of the file bytes
        pa.field("kind", pa.string(), nullable=False),  # image (video and audio later)
        pa.field("paths", pa.list_(pa.string()), nullable=False),  # every path holding these bytes, sorted
        pa.field("size", pa.int64()),
        pa.field("mtime", ts),  # modification time of the first path
        pa.field("width", pa.int32()),  # after EXIF orientation
        pa.field("height", pa.int32()),
        pa.field("taken", ts),  # EXIF date taken
        pa.field("date", ts),  # taken, else mtime: what --after/--before/--sort date use
        pa.field("camera", pa.string()),
        pa.field("latitude", pa.float64()),
        pa.field("longitude", pa.float64()),
        pa.field("orientation", pa.int32()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("thumbnail", pa.binary()),  # WebP, longest side 256 px
        pa.field("added", ts),
        pa.field("vector", pa.list_(pa.float16() if vector_type == "float16" else pa.float32(), dim)),
        pa.field("stack", pa.string()),  # id of the item this one is shown under (RAW under its JPEG), else null
    ])


def files_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        pa.field("path", pa.string(), nullable=False),  # absolute; undecodable bytes shown as \xNN
        pa.field("path_raw", pa.binary()),  # the exact bytes, for names that are not UTF-8
        pa.field("size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("item_id", pa.string()),  # null when the file failed
        pa.field("error", pa.string()),  # why it failed, else null
        pa.field("seen", pa.timestamp("us", tz="UTC")),
    ])


def jobs_schema() -> Any:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("kind", pa.string()),  # index or reindex
        pa.field("roots", pa.list_(pa.string())),
        pa.field("state", pa.string()),  # running, done, failed (a running job whose pid is gone was killed)
        pa.field("pid", pa.int64()),
        pa.field("started", ts),
        pa.field("finished", ts),
        pa.field("added", pa.int64()),
        pa.field("updated", pa.int64()),
        pa.field("moved", pa.int64()),
        pa.field("duplicates", pa.int64()),
        pa.field("removed", pa.int64()),
        pa.field("skipped", pa.int64()),
        pa.field("failed", pa.int64()),
    ])
