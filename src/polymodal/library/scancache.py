"""A snapshot of the ``files`` table as plain JSON, so a re-scan that finds nothing changed needs no database.

Importing lancedb alone costs over a second; most runs of ``index`` on a collection change nothing. The
snapshot is written at the end of every complete ``index`` run and deleted before any write begins (index,
remove, reindex), so whenever it exists it is exactly what the ``files`` table holds. A re-scan whose walk
matches it file for file (same paths, sizes, mtimes and failures) is answered from it; anything else goes
the full way and rewrites it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from polymodal.library.scan import ScanResult, under
from polymodal.library.types import Failure, IndexReport

FILE = "scan-cache.json"
_VERSION = 1


def invalidate(root: Path) -> None:
    try:
        os.unlink(root / FILE)
    except FileNotFoundError:
        pass


def write(root: Path, files: Any) -> None:
    """Snapshot an Arrow table with path, size, mtime_ns and error columns."""
    cols = [files.column(c).to_pylist() for c in ("path", "size", "mtime_ns", "error")] if files.num_rows else \
        [[], [], [], []]
    data = {"version": _VERSION, "files": {p: [s, m, e] for p, s, m, e in zip(*cols)}}
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".scan-cache.", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, root / FILE)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def unchanged_report(root: Path, scan: ScanResult, roots: list[str], prune: bool) -> IndexReport | None:
    """The report of a run that would change nothing, or None when something differs (or no snapshot)."""
    try:
        with open(root / FILE, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return None
    known: dict[str, list[Any]] = data["files"]
    report = IndexReport()
    for f in scan.files:
        entry = known.get(f.path)
        if entry is None or entry[0] != f.size or entry[1] != f.mtime_ns:
            return None
        if entry[2] is None:
            report.skipped += 1
        else:
            report.failed += 1
            report.failures.append(Failure(f.path, entry[2]))
    for p in scan.problems:
        entry = known.get(p.path)
        if entry is None or entry[2] != p.reason:
            return None
        report.failed += 1
        report.failures.append(Failure(p.path, p.reason))
    if prune:
        seen = len(scan.files) + len(scan.problems)
        under_roots = sum(1 for path in known if any(under(path, r) for r in roots))
        if under_roots != seen:
            return None  # something indexed under these roots is gone: it must be pruned
    return report
