"""``check`` and ``repair``: verify a library against its own invariants, and rebuild what is broken from the
source files without losing a good item.

What can go wrong, and why (docs/reliability.md):

- A process killed mid-run leaves item paths whose ``files`` row is not written yet (items are committed
  first). That is *pending*, not broken: the next ``index`` (or ``repair``) records them.
- A power loss during a commit: LanceDB writes a commit's files and then links its manifest, with no fsync
  of its own; polymodal flushes the filesystem after every commit (``store.sync_to_disk``), so only the
  commit in flight can be lost, but that one may leave a zero-length or dangling newest version, which makes
  the whole table unreadable. ``repair`` moves such versions aside, newest first, until the table reads.
- A reindex killed between its switch and its clean-up leaves the old items table behind (*stale*).
- Anything else (a vector of the wrong width, a thumbnail that does not decode, a ``files`` row naming an
  item that does not exist) is an *error*: ``repair`` re-reads the files and rebuilds it.

The ``segments`` and ``media`` tables of video and audio items are checked by ``check_media``.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.library import scancache, segments
from polymodal.library.check_media import check_segments
from polymodal.library.findings import ERROR, PENDING, STALE, CheckReport, Finding, vector_problems
from polymodal.library.schema import DB_DIR, FILES, ITEMS, JOBS, files_schema, items_schema, jobs_schema
from polymodal.library.segments import MEDIA, SEGMENTS_PREFIX, media_schema, segments_schema
from polymodal.library.store import Store, write_lock

#: findings that compare two tables (read at one version each, so at different instants): ``files`` with
#: ``items``, and ``segments`` and ``media`` with ``items``
_LINK_KINDS = frozenset({"dangling_file", "duplicate_file", "shared_path", "orphan_segment", "orphan_media",
                         "missing_segments", "missing_media"})
#: findings inside a video or audio item's segments or media row (the subject is the item, or one of its
#: segments as ``<item id>:<segment id>``): repair indexes the item's file again
_MEDIA_KINDS = frozenset({"bad_segment_vector", "bad_segment_time", "bad_segment_thumbnail", "duplicate_segment",
                          "segment_gap", "missing_segments", "missing_media"})
#: where repair moves versions and tables it cannot read, inside the library directory (never deleted)
QUARANTINE = "quarantine"
_CHUNK = 500


@dataclass
class RepairReport:
    before: CheckReport
    after: CheckReport
    rolled_back: list[str] = field(default_factory=list)  # "files: 3 newest versions set aside"
    tables_dropped: list[str] = field(default_factory=list)
    reembedded: int = 0  # items whose vector or thumbnail was rebuilt from their file
    reindexed: int = 0  # paths indexed again (rows that pointed nowhere, pending paths, broken videos and audio)
    orphans_dropped: int = 0  # items not in the library (or photos) whose segment or media rows were dropped
    lost: list[str] = field(default_factory=list)  # items removed: none of their files is left to rebuild them

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("before", "after")}
        return {**out, "before": self.before.to_dict(), "after": self.after.to_dict()}


# -- reading a table whole ------------------------------------------------------------------------------------

@dataclass
class _Whole:
    data: Any  # every column but ``thumbnail``, which becomes ``has_thumbnail`` (a non-empty one is stored)
    bad_thumbnails: dict[str, str] = field(default_factory=dict)  # row key -> why its thumbnail does not decode


def _read_whole(store: Store, name: str, decode: bool = False) -> _Whole | None:
    """Every row of a table, in one scan of its newest version, so every data file of it is read once.

    A table with thumbnails is streamed ``_CHUNK`` rows at a time, so its thumbnails are never all in memory;
    with ``decode`` each stored one is decoded on the way, its row named by ``key`` where the table has one
    (segments), else by ``id``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    table = store.table(name)
    if table is None:
        return None
    if "thumbnail" not in table.schema.names:
        return _Whole(store.scan(table))
    reader = table.search().limit(None).to_batches(_CHUNK)
    at = reader.schema.get_field_index("thumbnail")
    schema = reader.schema.set(at, pa.field("has_thumbnail", pa.bool_()))
    key = "key" if "key" in reader.schema.names else "id"
    parts: list[Any] = []
    bad: dict[str, str] = {}
    for batch in reader:
        thumbs = batch.column(at)
        if decode:
            for k, data in zip(batch.column(key).to_pylist(), thumbs.to_pylist()):
                why = _thumbnail_problem(data) if data else None
                if why:
                    bad[k] = why
        stored = pc.greater(pc.fill_null(pc.binary_length(thumbs), 0), 0)
        parts.append(batch.set_column(at, schema.field(at), stored))
    return _Whole(pa.Table.from_batches(parts, schema=schema), bad)


def _data(whole: _Whole | None) -> Any:
    return None if whole is None else whole.data


def _paired_table(name: str) -> bool:
    """An items table or a segments table (a reindex builds ``items_<tag>`` and ``segments_<tag>``)."""
    return any(name == prefix or name.startswith(f"{prefix}_") for prefix in (ITEMS, SEGMENTS_PREFIX))


def _fresh(store: Store) -> Store:
    """A new connection: a table that failed to open must not be served from the old one's cache."""
    return Store(store.root, store.meta)


# -- check ----------------------------------------------------------------------------------------------------

def writer_running(root: Path) -> bool:
    """Whether another process holds the library's writer lock (probed with a shared lock, never waiting)."""
    try:
        fd = os.open(root / ".lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (closing drops the shared lock)
    return False


def check_library(store: Store, *, thumbnails: bool = True, verify_files: bool = False,
                  writer: bool | None = None) -> CheckReport:
    """Every invariant the library relies on, read from disk; never writes.

    Each table is read at one committed version, but two tables cannot be read at one instant: while a
    writer runs (``writer``; probed from the lock when None), a ``files`` row and its item may be read on
    either side of a commit, so problems between the tables are reported as pending, not as errors.
    """
    report = CheckReport(str(store.root))
    if writer is None:
        writer = writer_running(store.root)
    names = store._table_names()
    items_name, seg_name = store.meta.items_table, segments.segments_table_name(store)
    tables: dict[str, _Whole | None] = {}
    # ``files`` before ``items``: a writer commits a batch's items before its files, so items read after the
    # files cover every row read, even while an indexer runs (the other order sees rows of a newer batch).
    # ``segments`` and ``media`` after ``items``: an item's segments and media row are committed before the
    # item, so those read after cover every item read (rows of a newer item read as orphans until it lands).
    for name in (FILES, items_name, seg_name, MEDIA, JOBS):
        if name not in names:
            if name == items_name and store.meta.dim:
                # A first batch killed before its items commit leaves no table; with files rows it is an error.
                tables[name] = None
            continue
        try:
            tables[name] = _read_whole(_fresh(store), name, decode=thumbnails and name in (items_name, seg_name))
        except Exception as exc:  # noqa: BLE001 - any failure to read is what check reports
            report.add(ERROR, "unreadable_table", name, f"cannot read table {name!r}: {_short(exc)}")
    for name in sorted(names):
        if _paired_table(name) and name not in (items_name, seg_name):
            report.add(STALE, "stale_table", name, "left by an interrupted reindex; repair (or the next reindex) "
                       "drops it")
    whole_items, segs = tables.get(items_name), tables.get(seg_name)
    items, files = _data(whole_items), _data(tables.get(FILES))
    if whole_items is not None:
        report.items = whole_items.data.num_rows
        _check_items(store, whole_items, report, thumbnails)
    if files is not None:
        report.files = files.num_rows
    if segs is not None:
        report.segments = segs.data.num_rows
    readable = not any(f.kind == "unreadable_table" for f in report.findings)
    if files is not None and readable:
        _check_links(items, files, report)
    if readable:
        check_segments(items, _data(segs), _data(tables.get(MEDIA)), segs.bad_thumbnails if segs else {},
                       store.meta.dim or 0, report)
    if writer:
        report.findings = [
            Finding(PENDING, f.kind, f.subject, f"{f.reason} (a writer is running: it may be mid-commit)")
            if f.kind in _LINK_KINDS and f.severity == ERROR else f for f in report.findings]
    if files is not None and verify_files:
        _check_sources(files, items, report)
    if files is not None:
        _check_scancache(store.root, files, report)
    return report


def _check_items(store: Store, whole: _Whole, report: CheckReport, thumbnails: bool) -> None:
    items = whole.data
    dim = store.meta.dim or 0
    ids = items.column("id").to_pylist()
    for iid, n in Counter(ids).items():
        if n > 1:
            report.add(ERROR, "duplicate_item", iid, f"item {iid} is stored {n} times")
    owner: dict[str, str] = {}
    for row in items.select(["id", "hash", "paths"]).to_pylist():
        iid = row["id"]
        if not row["hash"] or row["hash"][:16] != iid:
            report.add(ERROR, "bad_hash", iid, f"item {iid} has content hash {row['hash']!r}, which does not match "
                       "its id")
        if not row["paths"]:
            report.add(ERROR, "no_path", iid, f"item {iid} has no path")
        for p in row["paths"] or []:
            if p in owner and owner[p] != iid:
                report.add(ERROR, "shared_path", p, f"{p} is listed under items {owner[p]} and {iid}")
            owner[p] = iid
    for iid, reason in vector_problems(items.column("vector").combine_chunks(), ids, dim):
        report.add(ERROR, "bad_vector", iid, f"item {iid}: {reason}")
    if thumbnails:
        kinds = items.column("kind").to_pylist()
        for iid, kind, stored in zip(ids, kinds, items.column("has_thumbnail").to_pylist()):
            # (an audio file has no picture to show: its item is stored without a thumbnail)
            why = whole.bad_thumbnails.get(iid) if stored else None if kind == "audio" else "no thumbnail"
            if why:
                report.add(ERROR, "bad_thumbnail", iid, f"item {iid}: {why}")


def _thumbnail_problem(data: bytes | None) -> str | None:
    from PIL import Image

    if not data:
        return "no thumbnail"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception as exc:  # noqa: BLE001 - any decode failure makes the thumbnail bad
        return f"thumbnail does not decode ({_short(exc)})"
    return None


def _check_links(items: Any, files: Any, report: CheckReport) -> None:
    """``files`` -> ``items``: every indexed path belongs to its item; item paths without a row are pending."""
    item_paths: dict[str, set[str]] = {}
    if items is not None:
        for iid, paths in zip(items.column("id").to_pylist(), items.column("paths").to_pylist()):
            item_paths[iid] = set(paths or [])
    rows = files.select(["path", "item_id", "error"]).to_pylist() if files is not None else []
    for path, n in Counter(r["path"] for r in rows).items():
        if n > 1:
            report.add(ERROR, "duplicate_file", path, f"{path} has {n} rows")
    recorded: set[str] = set()
    for r in rows:
        recorded.add(r["path"])
        iid = r["item_id"]
        if iid is None:
            continue
        if r["error"] is not None:
            report.add(ERROR, "dangling_file", r["path"], f"{r['path']} has both an item and an error")
        elif iid not in item_paths:
            report.add(ERROR, "dangling_file", r["path"], f"{r['path']} points to item {iid}, which does not exist")
        elif r["path"] not in item_paths[iid]:
            report.add(ERROR, "dangling_file", r["path"], f"{r['path']} points to item {iid}, which does not list it")
    for iid, paths in item_paths.items():
        for p in sorted(paths - recorded):
            report.add(PENDING, "unrecorded_path", p, f"{p} (item {iid}) has no files row yet: an interrupted run; "
                       "the next index records it")


def _check_sources(files: Any, items: Any, report: CheckReport) -> None:
    """Optionally: each indexed file still holds the bytes of its item (a changed file is re-indexed next run)."""
    from polymodal.library.ingest import content_hash, item_id, read_file

    for r in files.select(["path", "path_raw", "item_id", "size", "mtime_ns"]).to_pylist():
        if r["item_id"] is None:
            continue
        raw = r["path_raw"] or r["path"].encode()
        try:
            data = read_file(raw)
        except OSError as exc:
            report.add(PENDING, "source_gone", r["path"], f"{r['path']}: {exc.strerror or exc}; the next index "
                       "of its folder prunes it")
            continue
        if item_id(content_hash(data)) != r["item_id"]:
            report.add(PENDING, "source_changed", r["path"], f"{r['path']} has changed since it was indexed; "
                       "the next index updates it")


def _check_scancache(root: Path, files: Any, report: CheckReport) -> None:
    """The re-scan shortcut must hold exactly what ``files`` holds, or a changed library would look unchanged."""
    import json

    try:
        with open(root / scancache.FILE, encoding="utf-8") as fh:
            cached = json.load(fh)["files"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.add(ERROR, "bad_scan_cache", scancache.FILE, f"unreadable ({_short(exc)})")
        return
    rows = files.select(["path", "size", "mtime_ns", "error"]).to_pylist()
    table = {r["path"]: [r["size"], r["mtime_ns"], r["error"]] for r in rows}
    if table != cached:
        report.add(ERROR, "bad_scan_cache", scancache.FILE, "differs from the files table")


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


# -- repair ---------------------------------------------------------------------------------------------------

RepairProgress = Callable[[str], None]


def repair_library(library: Any, *, progress: RepairProgress | None = None) -> RepairReport:
    """Fix everything ``check`` reports as an error or stale, rebuilding from the source files.

    Order: tables that do not read are rolled back to their newest readable version; stale tables are dropped;
    photos whose vector or thumbnail is bad are rebuilt from a file that still holds their bytes (removed only
    when none does); ``files`` rows that point nowhere are dropped and those paths, with any pending ones and
    the files of broken videos and audio (a bad vector, thumbnail, segment or media row), indexed again;
    segment and media rows of items that are not in the library are dropped. A good item is never removed or
    re-embedded.
    """
    say = progress or (lambda _msg: None)
    store: Store = library.store
    before = check_library(store)
    out = RepairReport(before, before)
    # (inside the lock below, the checks pass writer=False: the lock probe would see repair's own lock)
    with write_lock(library.root):
        scancache.invalidate(library.root)
        for name in sorted({f.subject for f in before.findings if f.kind == "unreadable_table"}):
            say(f"rolling back table {name}")
            out.rolled_back.append(_roll_back(store, name))
        store = library.store = _fresh(store)
        for f in before.findings:
            if f.kind == "stale_table":
                store.drop(f.subject)
                out.tables_dropped.append(f.subject)
        mid = check_library(store, thumbnails=True, writer=False)
        rebuild = {f.subject for f in mid.findings if f.kind in ("bad_vector", "bad_thumbnail", "bad_hash",
                                                                 "duplicate_item", "no_path")}
        rebuild |= {f.subject.partition(":")[0] for f in mid.findings if f.kind in _MEDIA_KINDS}
        media_ids: list[str] = []
        media_paths: set[str] = set()
        if rebuild:
            # Videos and audio are rebuilt by indexing their files again (segments, transcript and all);
            # photos in place, from their bytes.
            kinds = store.items_by("id", sorted(rebuild), ["id", "kind", "paths"]).to_pylist()
            media_ids = sorted({r["id"] for r in kinds if r["kind"] != "image"})
            media_paths = {p for r in kinds if r["kind"] != "image" for p in r["paths"] or []}
            photos = [r["id"] for r in kinds if r["kind"] == "image"]
            say(f"rebuilding {len(rebuild)} items from their files")
            if photos:
                _rebuild_items(library, store, photos, out)
        mid = check_library(store, thumbnails=False, writer=False)
        forget = {f.subject for f in mid.findings if f.kind in ("dangling_file", "duplicate_file", "shared_path")}
        forget |= media_paths
        pending = {f.subject for f in mid.findings if f.kind == "unrecorded_path"}
        if forget or pending:
            say(f"indexing {len(forget | pending)} paths again")
            out.reindexed = _reindex_paths(library, store, forget, pending)
        if media_ids:
            back = set(store.items_by("id", media_ids, ["id"]).column("id").to_pylist())
            out.lost.extend(i for i in media_ids if i not in back)
        # Rows left by a run killed between an item's segments and the item, and those of the videos and audio
        # just lost (indexing again removed them, not their segments)
        out.orphans_dropped = segments.prune_orphans(store)
        store.sync()
    out.after = check_library(store)
    return out


def _manifests(table_dir: Path) -> list[Path]:
    """Version manifests, newest first (lance names them either ``N.manifest`` or ``(2**64 - 1 - N).manifest``)."""
    found = []
    for p in (table_dir / "_versions").glob("*.manifest"):
        try:
            found.append((int(p.stem), p))
        except ValueError:
            continue
    if not found:
        return []
    v2 = max(n for n, _ in found) > 2**63  # the newer naming: a smaller number is a newer version
    found.sort(key=lambda t: t[0], reverse=not v2)
    return [p for _, p in found]


def _roll_back(store: Store, name: str) -> str:
    """Set aside the newest versions of ``name`` until it reads; a table with no readable version is set aside."""
    table_dir = store.root / DB_DIR / f"{name}.lance"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    aside = store.root / QUARANTINE / stamp / f"{name}.lance"
    moved = 0
    while True:
        try:
            _read_whole(_fresh(store), name)
            return f"{name}: {moved} newest version(s) set aside under {aside}"
        except Exception:  # noqa: BLE001 - still unreadable: set the next newest version aside
            pass
        manifests = _manifests(table_dir)
        if len(manifests) <= 1:
            break
        (aside / "_versions").mkdir(parents=True, exist_ok=True)
        shutil.move(str(manifests[0]), aside / "_versions" / manifests[0].name)
        hint = table_dir / "_versions" / "latest_version_hint.json"
        if hint.exists():
            hint.unlink()  # it names the version just set aside
        moved += 1
    # Nothing readable is left: set the whole table aside and start it empty. Items are rebuilt from the
    # files (their rows now point nowhere), segments and media rows from the video and audio files (their
    # items now lack them); a lost files table only makes the next index re-hash everything.
    aside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(table_dir), aside)
    schema = _empty_schema(store, name)
    if schema is not None:
        _fresh(store)._db.create_table(name, schema=schema)
    return f"{name}: no readable version; the table was set aside under {aside} and started empty"


def _empty_schema(store: Store, name: str) -> Any | None:
    """What a table set aside starts again with (None: the library has no model, so no vector width, yet)."""
    if name == FILES:
        return files_schema()
    if name == JOBS:
        return jobs_schema()
    if name == MEDIA:
        return media_schema()
    if not store.meta.dim:
        return None
    if name.startswith(SEGMENTS_PREFIX):
        return segments_schema(store.meta.dim)
    return items_schema(store.meta.dim, store.meta.vector_type)


def _rebuild_items(library: Any, store: Store, ids: list[str], out: RepairReport) -> None:
    """New vector and thumbnail for each item from the first of its files that still holds its bytes."""
    import pyarrow as pa

    from polymodal.errors import ImageDecodeError
    from polymodal.library.ingest import content_hash, item_id, read_file
    from polymodal.media.thumbnails import make_thumbnail

    encoder = library.encoder()
    schema = store.schema()
    rows = store.items_by("id", ids).to_pylist()
    files = store.scan(store.files(), ["path", "path_raw"])
    raw = dict(zip(files.column("path").to_pylist(), files.column("path_raw").to_pylist())) if files.num_rows else {}
    fixed: dict[str, dict[str, Any]] = {}
    lost: list[str] = []
    for row in rows:
        if row["id"] in fixed:
            continue  # a duplicate row: one good copy replaces them all
        made = None
        for path in row["paths"] or []:
            try:
                data = read_file(raw.get(path) or os.fsencode(path))
                if item_id(content_hash(data)) != row["id"]:
                    continue
                image = encoder.load_image(data)
                vec = np.asarray(encoder._embed_image_batch([encoder.preprocess_image(image)]), np.float32)[0]
                made = {**row, "hash": content_hash(data), "vector": (vec / max(np.linalg.norm(vec), 1e-12)).tolist(),
                        "thumbnail": make_thumbnail(image)}
                break
            except (OSError, ImageDecodeError):
                continue
        if made is None:
            lost.append(row["id"])
        else:
            fixed[row["id"]] = made
    table = store.items_table()
    if fixed:
        # Delete then add, so duplicate rows of one id collapse to one.
        store.delete(table, "id", list(fixed))
        table.add(pa.Table.from_pylist(list(fixed.values()), schema=schema))
        out.reembedded = len(fixed)
    if lost:
        store.delete(table, "id", lost)
        store.delete(store.files(), "item_id", lost)
        out.lost.extend(lost)
    store.sync()


def _reindex_paths(library: Any, store: Store, forget: set[str], pending: set[str]) -> int:
    """Index these paths again as a scan of just those files.

    ``forget`` paths (rows pointing nowhere, paths under two items) are first taken off every item and out of
    ``files``; ``pending`` paths (listed by an item, no row yet) keep their item when the file still holds its
    bytes, so a good item is never embedded twice, and are taken off it when the file has changed since.
    """
    import pyarrow as pa

    from polymodal.library.ingest import Indexer, content_hash, item_id, read_file
    from polymodal.library.scan import FoundFile, ScanResult

    files = store.scan(store.files(), ["path", "path_raw"])
    raw = dict(zip(files.column("path").to_pylist(), files.column("path_raw").to_pylist())) if files.num_rows else {}
    items = store.scan(store.items(), ["id", "paths"]).to_pylist() if store.items() is not None else []
    owner = {p: r["id"] for r in items for p in r["paths"] or []}
    detach = set(forget)
    for path in pending:
        try:
            same = item_id(content_hash(read_file(raw.get(path) or os.fsencode(path)))) == owner.get(path)
        except OSError:
            same = False
        if not same:
            detach.add(path)
    touched = [r["id"] for r in items if detach & set(r["paths"] or [])]
    if touched:
        full = store.items_by("id", touched)
        schema = store.schema()
        keep_paths = [sorted(set(p) - detach) for p in full.column("paths").to_pylist()]
        full = full.set_column(full.schema.get_field_index("paths"), "paths",
                               pa.array(keep_paths, pa.list_(pa.string())))
        empty = [i for i, p in zip(full.column("id").to_pylist(), keep_paths) if not p]
        keep = full.filter(pa.array([bool(p) for p in keep_paths]))
        store.commit_items(keep.select(schema.names).cast(schema) if keep.num_rows else None, empty)
    if forget:
        store.delete(store.files(), "path", sorted(forget))
    found = []
    for path in sorted(forget | pending):
        rawp = raw.get(path) or os.fsencode(path)
        try:
            st = os.stat(rawp)
        except OSError:
            continue  # gone: nothing to index, and nothing of it is left in the library
        found.append(FoundFile(path, rawp, st.st_size, st.st_mtime_ns))
    if found:
        indexer = Indexer(store, library.encoder)
        indexer.media_options = library.media_options  # videos and audio indexed as their library's owner asks
        indexer.run([], ScanResult(files=found), prune=False)
    return len(found)
