"""Indexing: compare a scan with what the library knows, read only what changed, embed only new content.

Per file: unchanged size and mtime -> not opened. Otherwise its bytes are hashed; content the library
already holds (a move, a copy, a touched file) gets the new path added without decoding or embedding;
new content is decoded (orientation applied), measured, thumbnailed and embedded. Each batch is committed
as one ``items`` commit followed by one ``files`` commit, so a process killed at any instant leaves a
library that the next run completes: a path in ``items`` but missing from ``files`` is simply re-hashed,
found present, and recorded, never added twice.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from polymodal.errors import ImageDecodeError, MediaDecodeError
from polymodal.library import segments
from polymodal.library.media_ingest import MediaOptions, media_kind
from polymodal.library.remote import REMOTE_PREFIXES
from polymodal.library.scan import FoundFile, Problem, ScanResult, under
from polymodal.library.store import Store
from polymodal.library.types import Failure, IndexReport
from polymodal.media.metadata import PhotoMetadata, read_header
from polymodal.media.thumbnails import make_thumbnail
from polymodal.models.base import Encoder

ProgressCallback = Callable[[int, int], None]

#: files read, decoded and embedded per commit: large enough to amortise a LanceDB commit, small enough
#: that a kill loses little work
BATCH_SIZE = 64
_READ_WORKERS = 2


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def item_id(digest: str) -> str:
    return digest[:16]


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


@dataclass
class _Known:
    size: int
    mtime_ns: int
    item_id: str | None
    error: str | None


@dataclass
class _Prepared:
    file: FoundFile
    digest: str | None = None
    error: str | None = None
    pixels: Any = None  # the encoder's preprocessed input; None for content already in the library
    vector: Any = None  # its embedding, once computed
    width: int = 0
    height: int = 0
    meta: PhotoMetadata | None = None
    thumbnail: bytes = b""
    kind: str = "image"  # image, video or audio
    media: Any = None  # media_ingest.MediaResult of a video or audio file: its segments and metadata


def read_file(raw: bytes) -> bytes:
    """The bytes of a file (a seam the tests use to simulate unreadable files when running as root)."""
    if raw.startswith(REMOTE_PREFIXES):
        from polymodal.library.remote import read_bytes

        return read_bytes(raw.decode())  # an object in a bucket (s3://, gs://): see remote.py
    with open(raw, "rb") as fh:
        return fh.read()


#: how often a file that changes while it is read is read again before it waits for the next run
READ_TRIES = 3
CHANGING = "it changed while being read (still being written?); the next index run reads it again"


class _Changing(Exception):
    """A local file's size or mtime moved while it was read: what was read may be half of it."""


def _stamp(raw: bytes) -> tuple[int, int]:
    st = os.stat(raw)
    return st.st_size, st.st_mtime_ns


def read_whole(f: FoundFile) -> tuple[bytes, FoundFile]:
    """The file's bytes, read while it held still (its size and mtime the same before and after, and as long
    as what was read), and the file as it was then: a file written meanwhile is read again, up to
    ``READ_TRIES`` times, and never stored half-written. Raises _Changing if it never held still."""
    if f.raw.startswith(REMOTE_PREFIXES):
        return read_file(f.raw), f  # an object in a bucket is written whole (a PUT is atomic)
    for attempt in range(READ_TRIES):
        before = _stamp(f.raw)
        data = read_file(f.raw)
        after = _stamp(f.raw)
        if before == after and len(data) == after[0]:
            if after != (f.size, f.mtime_ns):  # changed since the scan, whole now: record it as it is
                f = FoundFile(f.path, f.raw, after[0], after[1])
            return data, f
        time.sleep(0.2 * (attempt + 1))
    raise _Changing()


def _read_error(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file vanished during the scan"
    return f"cannot read: {exc.strerror or exc}"


class Indexer:
    def __init__(self, store: Store, encoder: Callable[[], Encoder], *, batch_size: int = BATCH_SIZE,
                 progress: ProgressCallback | None = None) -> None:
        self.store = store
        self._encoder_factory = encoder
        self._encoder: Encoder | None = None
        self._encoder_lock = threading.Lock()
        self.batch_size = batch_size
        self.progress = progress
        self.item_paths: dict[str, list[str]] = {}  # item id -> its paths, kept current through the run
        self._gone_paths: set[str] = set()  # known paths under the roots that the scan no longer finds
        self._moved_from: set[str] = set()  # gone paths whose content reappeared elsewhere: moves, not removals
        self.media_options = MediaOptions()  # how video and audio files are indexed (Library.add sets it)
        self.report = IndexReport()  # the current run's counts, read by the caller should the run be cut short

    @property
    def encoder(self) -> Encoder:
        # Loaded on first need: a re-scan where nothing changed never pays for loading a model. The reader
        # threads may ask at once; the lock makes sure it is loaded once.
        with self._encoder_lock:
            if self._encoder is None:
                self._encoder = self._encoder_factory()
            return self._encoder

    # -- state ------------------------------------------------------------------------------------------------

    def _known_files(self) -> dict[str, _Known]:
        data = self.store.scan(self.store.files(), ["path", "size", "mtime_ns", "item_id", "error"])
        if not data.num_rows:
            return {}
        cols = [data.column(c).to_pylist() for c in ("path", "size", "mtime_ns", "item_id", "error")]
        return {p: _Known(s, m, i, e) for p, s, m, i, e in zip(*cols)}

    def _item_paths(self) -> dict[str, list[str]]:
        data = self.store.scan(self.store.items(), ["id", "paths"])
        if not data.num_rows:
            return {}
        return dict(zip(data.column("id").to_pylist(), data.column("paths").to_pylist()))

    # -- the run ----------------------------------------------------------------------------------------------

    def run(self, roots: list[bytes], scan: ScanResult, *, prune: bool = True) -> IndexReport:
        """Bring the library in line with ``scan`` (the walk of ``roots``)."""
        report = self.report = IndexReport()
        known = self._known_files()
        self.item_paths = self._item_paths()
        root_texts = [r.decode("utf-8", "backslashreplace") for r in roots]

        found = {f.path for f in scan.files}
        todo: list[FoundFile] = []
        for f in scan.files:
            k = known.get(f.path)
            if k is not None and k.size == f.size and k.mtime_ns == f.mtime_ns:
                if k.error is not None:
                    report.failed += 1  # still the same broken file: not retried until it changes
                    report.failures.append(Failure(f.path, k.error))
                else:
                    report.skipped += 1
            else:
                todo.append(f)
        problem_paths = {p.path for p in scan.problems}
        gone: set[str] = set()
        if prune:
            gone = {p for p in known if p not in found and p not in problem_paths
                    and any(under(p, r) for r in root_texts)}
        self._gone_paths = gone
        self._moved_from = set()

        total = len(todo)
        done = 0
        if self.progress:
            self.progress(0, total)
        for prepared in self._prepared_batches(todo, known):
            self._commit_batch(prepared, known, report)
            done += len(prepared)
            if self.progress:
                self.progress(done, total)

        self._record_problems(scan.problems, known, report)
        if gone:
            self._prune(sorted(gone), known, report)
        return report

    def _prepared_batches(self, todo: list[FoundFile], known: dict[str, _Known]) -> Iterator[list[_Prepared]]:
        """The files to index, read, hashed and decoded, one commit's worth at a time, in scan order.

        The seam another engine overrides (``distributed.RayIndexer`` prepares and embeds them on a cluster);
        commits stay here, in the one process that holds the writer lock.
        """
        with ThreadPoolExecutor(max_workers=_READ_WORKERS) as pool:
            for start in range(0, len(todo), self.batch_size):
                batch = todo[start: start + self.batch_size]
                yield list(pool.map(lambda f: self._prepare(f, known), batch))

    # -- per file ---------------------------------------------------------------------------------------------

    def _prepare(self, f: FoundFile, known: dict[str, _Known]) -> _Prepared:
        out = _Prepared(f)
        if media_kind(f.raw) is not None:
            return self._prepare_media(f, out)
        try:
            data, out.file = read_whole(f)
        except OSError as exc:
            out.error = _read_error(exc)
            return out
        except _Changing:
            out.error = CHANGING
            return out
        out.digest = content_hash(data)
        iid = item_id(out.digest)
        if iid in self.item_paths:
            return out  # known content: no decoding, no embedding
        if not data:
            out.error = "the file is empty (0 bytes)"
            return out
        encoder = self.encoder  # outside the try: a model that cannot load is the job's error, not the file's
        try:
            # The encoder's loader may decode a large JPEG at reduced size (still >= 2x its input side),
            # which is plenty for the embedding and the 256 px thumbnail; the true size comes from the header.
            image = encoder.load_image(data)
            out.meta, size = _header(data)
            out.width, out.height = size or image.size
            out.thumbnail = make_thumbnail(image)
            out.pixels = encoder.preprocess_image(image)
        except ImageDecodeError as exc:
            out.error = exc.reason
        except MemoryError:
            out.error = "not enough memory to decode it"
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop the job; it is recorded instead
            out.error = f"cannot process it: {type(exc).__name__}: {exc}"
        return out

    def _prepare_media(self, f: FoundFile, out: _Prepared) -> _Prepared:
        """A video or audio file: hashed in chunks (never whole in memory), analysed and embedded at once."""
        from polymodal.library.media_ingest import analyse_media, file_hash

        try:
            before = None if f.raw.startswith(REMOTE_PREFIXES) else _stamp(f.raw)
            out.digest = file_hash(f.raw)
            if before is not None and (_stamp(f.raw) != before or before != (f.size, f.mtime_ns)):
                out.error = CHANGING  # a video still being copied: read whole at the next run
                return out
        except OSError as exc:
            out.error = _read_error(exc)
            return out
        if item_id(out.digest) in self.item_paths:
            return out  # known content: nothing decoded
        if f.size == 0:
            out.error = "the file is empty (0 bytes)"
            return out
        encoder = self.encoder  # a model that cannot load is the job's error, not the file's
        try:
            out.media = analyse_media(f.raw, encoder, self.media_options)
        except MediaDecodeError as exc:
            out.error = exc.reason
            return out
        except MemoryError:
            out.error = "not enough memory to decode it"
            return out
        out.kind, out.vector, out.thumbnail = out.media.kind, out.media.vector, out.media.thumbnail
        out.width, out.height = out.media.width or 0, out.media.height or 0
        return out

    def _embed(self, pixels: list[Any]) -> np.ndarray:
        # In the encoder's batches, not the commit's 64 at once: a runtime keeps memory for its largest batch
        # (64 pictures through EfficientNet-Lite0 held ~1 GB of activations in ONNX Runtime's arena).
        size = max(1, self.encoder.batch_size)
        parts = [self.encoder._embed_image_batch(pixels[i: i + size]) for i in range(0, len(pixels), size)]
        emb = np.asarray(np.concatenate(parts), dtype=np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def _embed_prepared(self, prepared: list[_Prepared]) -> None:
        """Set ``vector`` on every prepared file that needs one; one bad input fails only itself."""
        firsts: dict[str | None, _Prepared] = {}
        for p in prepared:
            if p.error is None and p.pixels is not None:
                firsts.setdefault(p.digest, p)  # the same bytes twice in a batch are embedded once
        todo = list(firsts.values())
        if not todo:
            return
        try:
            emb = self._embed([p.pixels for p in todo])
        except Exception:  # noqa: BLE001 - retried one by one below to find the input at fault
            emb = None
        for n, p in enumerate(todo):
            if emb is not None:
                p.vector = emb[n]
                continue
            try:
                p.vector = self._embed([p.pixels])[0]
            except Exception as exc:  # noqa: BLE001 - recorded as this file's failure
                p.error = f"the model failed on it: {type(exc).__name__}: {exc}"
            p.pixels = None
        for p in prepared:
            first = firsts.get(p.digest)
            if p.pixels is not None and first is not None and first is not p:
                p.vector, p.error, p.pixels = first.vector, first.error, None

    # -- commits ----------------------------------------------------------------------------------------------

    def _commit_batch(self, prepared: list[_Prepared], known: dict[str, _Known], report: IndexReport) -> None:
        import pyarrow as pa

        from polymodal.library.schema import files_schema, items_schema

        now = datetime.now(UTC)
        new_rows: dict[str, dict[str, Any]] = {}
        touched: set[str] = set()  # existing items whose path lists change
        file_rows: list[dict[str, Any]] = []
        self._embed_prepared(prepared)

        for p in prepared:
            f = p.file
            old = known.get(f.path)
            if p.error is not None:
                report.failed += 1
                report.failures.append(Failure(f.path, p.error))
                if old is not None and old.item_id:
                    touched |= self._detach(f.path, old.item_id)
                file_rows.append(_file_row(f, None, p.error, now))
                continue
            assert p.digest is not None
            iid = item_id(p.digest)
            if old is not None and old.item_id and old.item_id != iid:
                touched |= self._detach(f.path, old.item_id)
            paths = self.item_paths.get(iid)
            if paths is not None or iid in new_rows:
                # Content already here (or earlier in this batch): record the path, embed nothing.
                if old is not None and old.item_id == iid:
                    report.skipped += 1  # touched, same bytes
                elif old is not None and old.item_id:
                    report.updated += 1  # changed into bytes the library already had
                elif paths is not None and (moved_from := [q for q in paths if q in self._gone_paths]):
                    report.moved += 1
                    self._moved_from.update(moved_from)
                else:
                    report.duplicates += 1
                if self._attach(f.path, iid) and iid not in new_rows:
                    touched.add(iid)
            else:
                if old is not None and old.item_id:
                    report.updated += 1
                else:
                    report.added += 1
                meta = p.meta or PhotoMetadata()
                mtime = _utc(f.mtime_ns)
                if p.media is not None:
                    # Segments before their item: a kill between the two leaves segments nothing shows.
                    segments.write(self.store, iid, p.media.segments, p.media.media)
                    if p.media.media.get("speech_error"):
                        report.speech_failures.append(Failure(f.path, str(p.media.media["speech_error"])))
                new_rows[iid] = {
                    "id": iid, "hash": p.digest, "kind": p.kind, "paths": [f.path], "size": f.size,
                    "mtime": mtime, "width": p.width, "height": p.height, "taken": meta.taken,
                    "date": meta.taken or mtime, "camera": meta.camera, "latitude": meta.latitude,
                    "longitude": meta.longitude, "orientation": meta.orientation, "tags": [],
                    "thumbnail": p.thumbnail, "added": now,
                }
                self.item_paths[iid] = [f.path]
                assert p.vector is not None, f"{f.path} was neither found in the library nor embedded"
                new_rows[iid]["vector"] = p.vector.tolist()
            file_rows.append(_file_row(f, iid, None, now))

        for iid in new_rows:
            new_rows[iid]["paths"] = sorted(self.item_paths[iid])
        self._commit_items(list(new_rows.values()), touched - set(new_rows), items_schema, pa)
        if file_rows:
            seen = [r for r in file_rows if r["path"] in known]
            fresh = [r for r in file_rows if r["path"] not in known]
            self.store.upsert(self.store.files(), "path", pa.Table.from_pylist(seen, schema=files_schema()),
                              pa.Table.from_pylist(fresh, schema=files_schema()))
        for row in file_rows:
            known[row["path"]] = _Known(row["size"], row["mtime_ns"], row["item_id"], row["error"])

    def _commit_items(self, new_rows: list[dict[str, Any]], touched: set[str], items_schema: Any, pa: Any) -> None:
        """Existing items with their new path lists, items left with no path deleted, then new items."""
        if not new_rows and not touched:
            return
        keep = [i for i in touched if self.item_paths.get(i)]
        delete = [i for i in touched if not self.item_paths.get(i)]
        schema = items_schema(self.store.meta.dim)
        rows = None
        if keep:
            existing = self.store.items_by("id", keep)
            ids = existing.column("id").to_pylist()
            paths = pa.array([sorted(self.item_paths[i]) for i in ids], type=pa.list_(pa.string()))
            existing = existing.set_column(existing.schema.get_field_index("paths"), "paths", paths)
            rows = existing.select(schema.names).cast(schema)
        new = pa.Table.from_pylist(new_rows, schema=schema) if new_rows else None
        self.store.commit_items(rows, delete, new)
        for i in delete:
            self.item_paths.pop(i, None)

    def _attach(self, path: str, iid: str) -> bool:
        paths = self.item_paths.setdefault(iid, [])
        if path in paths:
            return False
        paths.append(path)
        return True

    def _detach(self, path: str, iid: str) -> set[str]:
        paths = self.item_paths.get(iid)
        if paths is None or path not in paths:
            return set()
        paths.remove(path)
        return {iid}

    def _record_problems(self, problems: list[Problem], known: dict[str, _Known], report: IndexReport) -> None:
        import pyarrow as pa

        from polymodal.library.schema import files_schema, items_schema

        if not problems:
            return
        now = datetime.now(UTC)
        touched: set[str] = set()
        rows = []
        for p in problems:
            report.failed += 1
            report.failures.append(Failure(p.path, p.reason))
            old = known.get(p.path)
            if old is not None and old.item_id:
                touched |= self._detach(p.path, old.item_id)
            rows.append({"path": p.path, "path_raw": p.raw, "size": -1, "mtime_ns": -1, "item_id": None,
                         "error": p.reason, "seen": now})
        self._commit_items([], touched, items_schema, pa)
        self.store.upsert(self.store.files(), "path", pa.Table.from_pylist(rows, schema=files_schema()))

    def _prune(self, gone: list[str], known: dict[str, _Known], report: IndexReport) -> None:
        import pyarrow as pa

        from polymodal.library.schema import items_schema

        touched: set[str] = set()
        for path in gone:
            old = known[path]
            if old.item_id:
                touched |= self._detach(path, old.item_id)
            if old.error is None and path not in self._moved_from:
                report.removed += 1
        # Items first: a kill between the two commits leaves a files row that the next run prunes again.
        self._commit_items([], touched, items_schema, pa)
        self.store.delete(self.store.files(), "path", gone)


def _header(data: bytes) -> tuple[PhotoMetadata, tuple[int, int] | None]:
    """EXIF metadata and the displayed (orientation-applied) size, read without decoding pixels."""
    return read_header(data)  # it decoded a moment ago; a header that cannot be read just leaves fields empty


def _file_row(f: FoundFile, iid: str | None, error: str | None, now: datetime) -> dict[str, Any]:
    return {"path": f.path, "path_raw": f.raw, "size": f.size, "mtime_ns": f.mtime_ns, "item_id": iid,
            "error": error, "seen": now}


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
