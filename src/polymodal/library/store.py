"""The LanceDB side of a library: open tables, read and write rows in batches, search vectors.

Nothing here knows about files on disk or models; ``ingest`` and ``search`` use it. Writes to ``items``
happen in single commits (``merge_insert`` with a delete clause), so a reader in another process always
sees a whole version of the table: no path listed twice, no item with no path.

Writes go through lancedb; reads of a local library through pylance (``reader.py``), so a search, ``similar``
or ``status`` never imports lancedb (over a second of a new process's start). A library on object storage
reads through lancedb too.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import InputError, LibraryError, LibraryLockedError, MissingDependencyError
from polymodal.library.reader import LanceReader
from polymodal.library.remote import storage_options
from polymodal.library.schema import DB_DIR, FILES, JOBS, LibraryMeta, files_schema, items_schema, jobs_schema

#: past this many items an ANN index is built: exact search costs ~1 ms per 1,000 items here, so at 50k it
#: passes ~50 ms while the index answers in ~10 ms (benchmarks/RESULTS.md)
ANN_THRESHOLD = 50_000
#: seconds a short edit (tag, remove) waits for another writer, e.g. a watcher's batch (library/watch.py)
EDIT_WAIT = 30.0
#: small fragments (one per batch commit) that trigger a compaction
_COMPACT_AT = 16
#: rows per SQL ``IN (...)`` list, to keep query plans small
_IN_CHUNK = 500
#: IVF partitions probed per query, and candidates per result re-ranked on the full vectors (refine_factor)
ANN_NPROBES = 32
ANN_REFINE = 10

#: what reads a library's tables: pylance (local tables only) or lancedb
READERS = ("lance", "lancedb")

_SCALAR_COLUMNS = ["id", "hash", "kind", "paths", "size", "mtime", "width", "height", "taken", "date", "camera",
                   "latitude", "longitude", "orientation", "tags", "added"]
#: columns added by migrations: read where the table has them (one not yet migrated is read as it is)
_LATER_COLUMNS = ["stack"]


def sync_to_disk(path: Path) -> None:
    """Flush everything written so far on the filesystem holding ``path``: file data and directory entries.

    LanceDB 0.40 (lance 13, object_store's LocalFileSystem) writes each file under a temporary name and
    renames or links it into place, but never calls fsync (traced with strace: no fsync, fdatasync or
    syncfs; docs/reliability.md), so a commit that has returned may still live only in the page cache and a
    power loss can drop it or leave a zero-length manifest. syncfs(2) after every commit makes each commit
    durable before the next begins: the ``items`` commit of a batch is on disk before its ``files`` commit.
    """
    if sys.platform.startswith("linux"):
        fd = os.open(path, os.O_RDONLY)
        try:
            if _libc().syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise LibraryError(f"cannot flush library {path} to disk: {os.strerror(err)}")
        finally:
            os.close(fd)
    else:
        os.sync()


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _lancedb() -> Any:
    try:
        import lancedb
    except ImportError:
        raise MissingDependencyError("lancedb", "the library") from None
    return lancedb


def sql_str(value: str) -> str:
    """A SQL string literal: quotes doubled, so a path like ``it's.jpg`` cannot end the literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_str(v) for v in values)})"


def _chunks(values: Sequence[Any], n: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), n):
        yield values[i: i + n]


class Table:
    """One table of the library, as the store hands it out.

    Reads (``count_rows``, ``scan``, ``nearest``, ``has_vector_index``) go through the store's reader; any other
    attribute (writes, ``schema``, lancedb's query builder) is the lancedb table's, opened on first use, so a
    process that only reads never imports lancedb.
    """

    def __init__(self, store: Store, name: str, table: Any = None) -> None:
        self.name = name
        self._store = store
        self._table = table

    @property
    def lancedb(self) -> Any:
        """The lancedb table (it checks for newer versions on every call, see ``Store._db``)."""
        if self._table is None:
            self._table = self._store._db.open_table(self.name)
        return self._table

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in ("_store", "_table", "name"):  # not set yet (copy, pickle)
            raise AttributeError(attr)
        return getattr(self.lancedb, attr)

    def count_rows(self, filter: str | None = None) -> int:  # lancedb's signature: callers pass it positionally
        reader = self._store.reader
        return reader.count(self.name, filter) if reader else int(self.lancedb.count_rows(filter))

    def scan(self, columns: list[str] | None = None, where: str | None = None) -> Any:
        """All rows (optionally filtered), ``columns`` only when given, as an Arrow table."""
        reader = self._store.reader
        if reader:
            return reader.scan(self.name, columns, where)
        query = self.lancedb.search()
        if where:
            query = query.where(where)
        if columns:
            query = query.select(columns)
        return query.limit(None).to_arrow()

    def column_names(self) -> list[str]:
        """The table's columns as stored (a library not yet migrated lacks the newest)."""
        reader = self._store.reader
        return reader.columns(self.name) if reader else list(self.lancedb.schema.names)

    def has_vector_index(self, column: str = "vector") -> bool:
        reader = self._store.reader
        if reader:
            return reader.has_vector_index(self.name, column)
        return any(column in idx.columns for idx in self.lancedb.list_indices())

    def nearest(self, vector: np.ndarray, limit: int, columns: list[str], where: str | None = None,
                ann: tuple[int, int] | None = None, column: str = "vector") -> Any:
        """The ``limit`` rows nearest to ``vector`` by the library's metric, ``columns`` then ``_distance``.

        ``where`` filters before ranking (so ``limit`` rows match it when that many do); ``ann``:
        (nprobes, refine_factor) to go through the column's index, None to compare with every row.
        """
        metric = self._store.meta.metric
        reader = self._store.reader
        if reader:
            return reader.nearest(self.name, vector, limit, metric, columns, where, ann, column)
        query = self.lancedb.search(np.asarray(vector, np.float32), vector_column_name=column).distance_type(metric)
        if where:
            query = query.where(where, prefilter=True)
        query = query.bypass_vector_index() if ann is None else query.nprobes(ann[0]).refine_factor(ann[1])
        return query.select([*columns, "_distance"]).limit(limit).to_arrow()


class Store:
    def __init__(self, root: Path, meta: LibraryMeta, reader: str | None = None) -> None:
        """``reader``: one of ``READERS``; by default pylance where the tables are on this machine."""
        self.root = root
        self.meta = meta
        self._conn: Any = None
        self._tables: dict[str, Table] = {}
        reader = reader or ("lancedb" if meta.storage else "lance")
        if reader not in READERS:
            raise InputError(f"unknown reader {reader!r}; use one of {', '.join(READERS)}")
        if reader == "lance" and meta.storage:
            raise InputError(f"reader 'lance' reads local tables only, not {meta.storage}; use 'lancedb'")
        #: None: reads go through lancedb
        self.reader = LanceReader(root / DB_DIR) if reader == "lance" else None

    @property
    def _db(self) -> Any:
        # Connected on first use: importing lancedb alone takes over a second, which a re-scan that finds
        # nothing changed (see scancache) or a search (reader.py) never needs to pay.
        if self._conn is None:
            # Check for newer versions on every read: a long-lived reader (a server, a notebook) sees what
            # an indexer in another process commits, one whole version at a time.
            uri = self.meta.storage or str(self.root / DB_DIR)
            self._conn = _lancedb().connect(uri, read_consistency_interval=timedelta(0),
                                            storage_options=storage_options(uri) or None)
        return self._conn

    # -- tables ---------------------------------------------------------------------------------------------

    def table_names(self) -> set[str]:
        return self._table_names()

    def _table_names(self) -> set[str]:
        if self.reader:
            return self.reader.table_names()
        res = self._db.list_tables()
        names = getattr(res, "tables", res)
        return set(names)

    def _open(self, name: str, schema: Any | None) -> Table | None:
        if name in self._tables:
            return self._tables[name]
        if name in self._table_names():
            table = Table(self, name)  # lancedb opens it only when something writes
        elif schema is not None:
            table = Table(self, name, self._db.create_table(name, schema=schema, exist_ok=True))
        else:
            return None
        self._tables[name] = table
        return table

    def items(self, create: bool = False) -> Table | None:
        """The items table, or None before the first item (its vector width is known only then)."""
        schema = items_schema(self.meta.dim, self.meta.vector_type) if create and self.meta.dim else None
        return self._open(self.meta.items_table, schema)

    def items_table(self) -> Table:
        """The items table, which must exist (callers check ``items()`` first or have just written)."""
        table = self.items(create=True)
        if table is None:
            raise LibraryError(f"library {self.root} has no items yet; index some files first")
        return table

    def schema(self) -> Any:
        """The items schema at this library's embedding width."""
        if not self.meta.dim:
            raise LibraryError(f"library {self.root} has no model yet; index some files first")
        return items_schema(self.meta.dim, self.meta.vector_type)

    def files(self) -> Table:
        table = self._open(FILES, files_schema())
        assert table is not None  # created when missing
        return table

    def jobs(self) -> Table:
        table = self._open(JOBS, jobs_schema())
        assert table is not None
        return table

    def drop(self, name: str) -> None:
        self._tables.pop(name, None)
        if name in self._table_names():
            self._db.drop_table(name)

    def create_items_table(self, name: str, dim: int) -> Table:
        self.drop(name)
        table = Table(self, name, self._db.create_table(name, schema=items_schema(dim, self.meta.vector_type)))
        self._tables[name] = table
        return table

    def table(self, name: str) -> Table | None:
        return self._open(name, None)

    # -- reading --------------------------------------------------------------------------------------------

    def prepare_reads(self) -> None:
        """Make the first read of the items cheap (see ``LanceReader.prepare``); nothing for lancedb reads."""
        if self.reader:
            self.reader.prepare(self.meta.items_table)

    def count_items(self) -> int:
        table = self.items()
        return table.count_rows() if table is not None else 0

    def scan(self, table: Table | None, columns: list[str] | None = None, where: str | None = None) -> Any:
        """All rows (optionally filtered) as an Arrow table."""
        if table is None:
            import pyarrow as pa

            return pa.table({})
        return table.scan(columns, where)

    def items_by(self, column: str, values: Sequence[str], columns: list[str] | None = None) -> Any:
        """Item rows whose ``column`` is one of ``values`` (all columns unless given)."""
        import pyarrow as pa

        table = self.items()
        parts = [self.scan(table, columns, sql_in(column, list(chunk))) for chunk in _chunks(list(values))]
        parts = [p for p in parts if p.num_rows]
        if not parts:
            schema = items_schema(self.meta.dim or 1)
            return schema.empty_table() if not columns else pa.schema([schema.field(c) for c in columns]).empty_table()
        return pa.concat_tables(parts)

    def vectors(self, ids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """Item ids and embeddings, (N, dim) float32, in the order of ``ids`` when given (unknown ones dropped)."""
        table = self.items()
        if table is None:
            return [], np.zeros((0, self.meta.dim or 0), np.float32)
        data = self.scan(table, ["id", "vector"]) if ids is None else self.items_by("id", ids, ["id", "vector"])
        if not data.num_rows:
            return [], np.zeros((0, self.meta.dim or 0), np.float32)
        vec = data.column("vector").combine_chunks()
        arr = np.asarray(vec.values.to_numpy(zero_copy_only=False), np.float32).reshape(len(vec), -1)
        got = data.column("id").to_pylist()
        if ids is None:
            return got, arr
        pos = {i: n for n, i in enumerate(got)}
        order = [pos[i] for i in ids if i in pos]  # in the order asked for
        return [got[n] for n in order], arr[order]

    def has_ann_index(self) -> bool:
        table = self.items()
        return table is not None and table.has_vector_index()

    def vector_search(self, vector: np.ndarray, limit: int, where: str | None = None, exact: bool = False) -> Any:
        """The ``limit`` nearest items by cosine distance, as Arrow with a ``_distance`` column.

        With an ANN index, ``refine_factor`` re-ranks ``limit * ANN_REFINE`` candidates on the full vectors,
        so scores are exact and the order close to exact search.
        """
        table = self.items_table()
        ann = None if exact or not table.has_vector_index() else (ANN_NPROBES, ANN_REFINE)
        columns = _SCALAR_COLUMNS + [c for c in _LATER_COLUMNS if c in table.column_names()]
        return table.nearest(vector, limit, columns, where, ann)

    # -- writing --------------------------------------------------------------------------------------------

    def commit_items(self, rows: Any, delete_ids: Iterable[str] = (), new_rows: Any = None) -> None:
        """Replace ``rows`` by id and delete ``delete_ids`` in one commit, then append ``new_rows`` (ids not
        yet in the table) in a second.

        That order keeps what a reader can see whole: a path moving from an old item to a new one is first
        taken off the old item (briefly in neither), never listed under both. Appending rather than merging
        new rows keeps a first index from re-reading the whole table at every batch.
        """
        table = self.items_table()
        delete_ids = list(delete_ids)
        if self.meta.vector_type != "float32":  # callers build float32 rows; stored at the library's width
            rows, new_rows = (None if t is None else t.cast(self.schema()) for t in (rows, new_rows))
        if rows is not None and rows.num_rows:
            builder = table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
            if delete_ids and len(delete_ids) <= _IN_CHUNK * 4:
                # One commit: rows that lose their last path vanish in the version that moves it.
                builder = builder.when_not_matched_by_source_delete(sql_in("id", delete_ids))
                delete_ids = []
            builder.execute(rows)
        for chunk in _chunks(delete_ids):
            table.delete(sql_in("id", list(chunk)))
        if new_rows is not None and new_rows.num_rows:
            table.add(new_rows)
        self.sync()

    def upsert(self, table: Any, key: str, rows: Any, new: Any = None) -> None:
        """Insert or replace ``rows`` by ``key``; ``new`` rows (keys known to be absent) are simply appended."""
        if rows is not None and rows.num_rows:
            table.merge_insert(key).when_matched_update_all().when_not_matched_insert_all().execute(rows)
        if new is not None and new.num_rows:
            table.add(new)
        self.sync()

    def delete(self, table: Any, column: str, values: Sequence[str]) -> None:
        for chunk in _chunks(list(values)):
            table.delete(sql_in(column, list(chunk)))
        self.sync()

    def sync(self) -> None:
        """Make every commit so far durable (see ``sync_to_disk``)."""
        sync_to_disk(self.root)

    def build_ann_index(self, progress: Callable[[str, float], None] | None = None) -> None:
        """IVF with 8-bit scalar quantisation: sqrt(N) partitions, ``ANN_NPROBES`` probed per query.

        Chosen over IVF-PQ by measurement (benchmarks/RESULTS.md): at 100k vectors IVF-PQ took minutes to
        train on two cores and reached recall@10 ~0.92, IVF-SQ trains in seconds and, with the exact
        re-ranking of ``refine_factor``, matches exact search on the benchmark.

        ``progress(phase, seconds)``: lancedb's ``create_index`` is one blocking call that reports nothing
        (0.40), so what can be told is the phase and the time spent in it: "building" at the start and every
        ``_HEARTBEAT_S`` while it runs (~2 min per million vectors here, benchmarks/RESULTS.md), then "built".
        """
        from lancedb.index import IvfSq

        table = self.items_table()
        n = table.count_rows()
        metric: Any = self.meta.metric  # "cosine"; lancedb types it as a Literal
        config = IvfSq(distance_type=metric, num_partitions=max(1, int(np.sqrt(n))), max_iterations=20)
        if progress is None:
            table.create_index("vector", config=config, replace=True)
        else:
            _with_heartbeat(lambda: table.create_index("vector", config=config, replace=True), progress)
        self.sync()

    def optimize(self, force: bool = False) -> None:
        """Compact small commits into larger files and fold new rows into the ANN index, when worth it.

        Compaction rewrites the fragments it merges, so it runs once small fragments pile up (each batch
        commit makes one) rather than after every run. Versions older than an hour are then removed: a
        reader holding one that long would lose it, which no command does.
        """
        for name in (self.meta.items_table, FILES, JOBS):
            table = self.table(name)
            if table is None:
                continue
            stats = table.stats()
            small = stats["fragment_stats"]["num_small_fragments"]
            unindexed = 0
            for idx in table.list_indices():
                unindexed += int(table.index_stats(idx.name).num_unindexed_rows)
            if force or small >= _COMPACT_AT or unindexed > max(1000, stats["num_rows"] // 20):
                table.optimize(cleanup_older_than=timedelta(hours=1))
                self.sync()


#: seconds between two progress reports of a long ANN index build
_HEARTBEAT_S = 5.0


def _with_heartbeat(work: Callable[[], Any], progress: Callable[[str, float], None]) -> None:
    """Run ``work`` in a thread, reporting ("building", elapsed) every ``_HEARTBEAT_S``, then ("built", total)."""
    import threading
    import time

    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread below
            errors.append(exc)

    start = time.monotonic()
    thread = threading.Thread(target=target, name="ann-index", daemon=True)
    thread.start()
    progress("building", 0.0)
    while thread.is_alive():
        thread.join(_HEARTBEAT_S)
        if thread.is_alive():
            progress("building", time.monotonic() - start)
    if errors:
        raise errors[0]
    progress("built", time.monotonic() - start)


@contextmanager
def write_lock(root: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold the library's writer lock. The kernel drops it when the process dies, even by SIGKILL.

    ``wait``: seconds to wait for another writer to finish before giving up (short edits such as ``tag`` and
    ``remove`` wait out a watcher's batch; ``index`` does not queue behind another ``index``)."""
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LibraryLockedError(
                        f"library {root} is being written by another polymodal process; wait for it to finish"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
