"""Reading a local library's tables with pylance (``lance``), the format library LanceDB writes with.

Why not lancedb itself: ``import lancedb`` costs 1.4–1.9 s on this machine (its namespace client's pydantic
models, pandas), ``import lance`` about 0.4 s, and a ``polymodal search`` in a new process has one second in
all (issue "Instant start"). Writes stay on lancedb; every read a search, ``similar`` or ``status`` makes
comes here, with the same SQL filters (both hand them to the same DataFusion planner in Lance) and the same
cosine ``_distance``. The two are pinned to versions that agree (pylance 14.0.2 is the one lancedb 0.41's own
tests pin), and tests/library/test_reader.py checks both return the same hits.

Each read opens its table at its latest version, as lancedb does with ``read_consistency_interval=0``, so a
long-lived reader (the server) sees every commit another process makes, one whole version at a time. The
opened datasets share one ``lance.Session``, whose caches (manifests, index partitions) make a reopen cost
~0.1 ms; a dataset per read also keeps concurrent readers (server threads) from sharing a mutable handle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import MissingDependencyError

#: how LanceDB names a table's directory inside its database directory (``<db>/<name>.lance``)
TABLE_SUFFIX = ".lance"


def _lance() -> Any:
    try:
        import lance
    except ImportError:
        raise MissingDependencyError("pylance", "reading the library") from None
    return lance


class LanceReader:
    """Reads the tables of one LanceDB database directory on a local disk."""

    def __init__(self, db_dir: Path) -> None:
        self.db_dir = db_dir
        self._session: Any = None

    def table_names(self) -> set[str]:
        """The tables lancedb would list: the ``*.lance`` directories (none before the first table) that hold
        a committed version. A table being created has its directory before its first manifest: another
        process reading then would find a table that cannot be opened yet."""
        try:
            entries = list(os.scandir(self.db_dir))
        except FileNotFoundError:
            return set()
        return {e.name[: -len(TABLE_SUFFIX)] for e in entries if e.name.endswith(TABLE_SUFFIX) and e.is_dir()
                and _has_version(Path(e.path))}

    def _dataset(self, name: str) -> Any:
        lance = _lance()
        if self._session is None:
            self._session = lance.Session()
        return lance.dataset(str(self.db_dir / f"{name}{TABLE_SUFFIX}"), session=self._session)

    def prepare(self, name: str) -> None:
        """Import the reader and read ``name``'s manifest into the session's cache, so the next read starts at
        once: a search calls this while its query is embedded on another thread (the session creation
        there releases the GIL; the ~0.3 s import here would otherwise come after it)."""
        if name in self.table_names():
            self._dataset(name)

    def columns(self, name: str) -> list[str]:
        return list(self._dataset(name).schema.names)

    def count(self, name: str, where: str | None = None) -> int:
        return int(self._dataset(name).count_rows(where))

    def scan(self, name: str, columns: list[str] | None = None, where: str | None = None) -> Any:
        return self._dataset(name).to_table(columns=columns or None, filter=where or None)

    def has_vector_index(self, name: str, column: str = "vector") -> bool:
        return any(column in idx.field_names for idx in self._dataset(name).describe_indices())

    def nearest(self, name: str, vector: np.ndarray, limit: int, metric: str, columns: list[str],
                where: str | None = None, ann: tuple[int, int] | None = None, column: str = "vector") -> Any:
        """The ``limit`` rows nearest to ``vector``, ``columns`` then ``_distance``, filtered before ranking.

        ``ann``: (nprobes, refine_factor) to search through the column's index; None searches every row.
        """
        ds = self._dataset(name)
        query: dict[str, Any] = {"column": column, "q": _query_vector(vector, ds.schema.field(column).type),
                                 "k": limit, "metric": metric, "use_index": ann is not None}
        if ann is not None:
            query["nprobes"], query["refine_factor"] = ann
        # _distance named among the columns: Lance's scanner otherwise adds it with a deprecation warning.
        return ds.to_table(columns=[*columns, "_distance"], filter=where or None, nearest=query, prefilter=True)


def _has_version(table: Path) -> bool:
    try:
        return any(name.endswith(".manifest") for name in os.listdir(table / "_versions"))
    except OSError:
        return False


def _query_vector(vector: np.ndarray, column_type: Any) -> np.ndarray:
    """The query at the column's float width (a float16 library is searched with a float16 query, as lancedb does)."""
    value_type = getattr(column_type, "value_type", None)
    dtype = np.float16 if value_type is not None and str(value_type) in ("halffloat", "float16") else np.float32
    return np.asarray(vector, dtype).reshape(-1)
