"""Live folders: ``index DIR... --watch`` keeps a library in step with its folders as files come and go.

The watcher first indexes the folders as ``index`` does, which also catches up on whatever changed while no
watcher ran (after a kill -9, a reboot). Then file events (``watchfiles``: inotify on Linux, FSEvents, ...)
arrive debounced; once the files they name have stopped changing (size and mtime the same ``SETTLE``
seconds apart, so a photo still being copied is not read half-written), the watcher runs one incremental
``Library.add`` over the folders. That pass is what keeps every rule of indexing: a moved or renamed file
keeps its item (content hash) and tags, a deleted one disappears, a burst of a thousand files is one batch,
and the writer lock is held only for that pass, so ``tag``, ``remove`` and a server's jobs run between
batches (a batch that finds the lock taken waits for it). Searches, ``status`` and ``serve`` read the library
throughout. Every ``RESCAN`` seconds without events the folders are scanned anyway (cheap when nothing
changed): network shares do not always deliver events, and ``force_polling`` watches by polling instead.

A watched folder that disappears (an unplugged disk, an unmounted share) is reported and watched for; its
items stay in the library until it is back and shows them gone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polymodal.errors import InputError, LibraryLockedError, MissingDependencyError
from polymodal.library.types import IndexReport

log = logging.getLogger("polymodal")

#: seconds a changed file's size and mtime must hold still before it is read
SETTLE = 0.4
#: milliseconds watchfiles gathers events into one set
DEBOUNCE_MS = 300
#: seconds without events after which the folders are scanned anyway
RESCAN = 300.0
#: longest wait for a file to settle before it is indexed anyway (a log being appended to forever)
SETTLE_CAP = 60.0


@dataclass(frozen=True)
class WatchBatch:
    report: IndexReport
    seconds: float  # how long the pass held the library's writer lock
    changes: int  # file events it answered (0 for the first pass and rescans)


def watch(library: Any, paths: Sequence[str | os.PathLike[str]], *, stop: threading.Event | None = None,
          on_batch: Callable[[WatchBatch], None] | None = None, force_polling: bool | None = None,
          rescan: float = RESCAN) -> None:
    """Index ``paths`` (folders) into ``library``, then follow them until ``stop`` is set (or Ctrl-C)."""
    try:
        import watchfiles
    except ImportError:
        raise MissingDependencyError("watchfiles", "watching folders") from None
    roots = [Path(os.path.abspath(os.fspath(p))) for p in paths]
    for root in roots:
        if not root.is_dir():
            raise InputError(f"--watch follows folders; {root} is not a folder")
    stop = stop or threading.Event()
    own = Path(os.path.abspath(library.root))
    _index(library, roots, 0, on_batch, stop)
    last = time.monotonic()
    missing: set[Path] = set()
    while not stop.is_set():
        present = [r for r in roots if r.is_dir()]
        gone = set(roots) - set(present)
        for root in sorted(gone - missing):
            log.warning("%s is gone; its items stay in the library, and it is watched for", root)
        back = missing - gone
        for root in sorted(back):
            log.warning("%s is back", root)
        missing = gone
        if back:
            _index(library, present, 0, on_batch, stop)
        if not present:
            stop.wait(1.0)
            continue
        for changes in watchfiles.watch(*present, stop_event=stop, debounce=DEBOUNCE_MS, step=50,
                                        rust_timeout=1000, yield_on_timeout=True, force_polling=force_polling,
                                        watch_filter=None, raise_interrupt=True):
            changed = sorted({p for _, p in changes if not _inside(Path(p), own) and not _hidden(Path(p), present)})
            if changed:
                _settle([Path(p) for p in changed], stop)
                _index(library, present, len(changed), on_batch, stop)
                last = time.monotonic()
            elif time.monotonic() - last > rescan:
                _index(library, present, 0, on_batch, stop)
                last = time.monotonic()
            if stop.is_set() or any(not r.is_dir() for r in present) or any(r.is_dir() for r in missing):
                break  # a folder went or came back: watch the new set


def _index(library: Any, roots: list[Path], changes: int, on_batch: Callable[[WatchBatch], None] | None,
           stop: threading.Event) -> None:
    while not stop.is_set():
        present = [r for r in roots if r.is_dir()]  # a folder may go between the event and this pass
        if not present:
            return
        start = time.monotonic()
        try:
            report = library.add([str(r) for r in present])
        except LibraryLockedError:
            stop.wait(0.5)  # another writer (tag, remove, a server job): this batch waits its turn
            continue
        except InputError:
            if all(r.is_dir() for r in present):
                raise
            continue  # a folder went during the pass: again with those still here
        if on_batch is not None:
            on_batch(WatchBatch(report, time.monotonic() - start, changes))
        return


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None  # gone (deleted, or moved away): nothing to wait for
    return (st.st_size, st.st_mtime_ns) if path.is_file() else None


def _settle(paths: list[Path], stop: threading.Event) -> None:
    """Wait until none of ``paths`` changes over ``SETTLE`` seconds and none was written in the last ``SETTLE``."""
    deadline = time.monotonic() + SETTLE_CAP
    before = {p: _stamp(p) for p in paths}
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(SETTLE)
        now = {p: _stamp(p) for p in paths}
        fresh = any(s is not None and time.time_ns() - s[1] < SETTLE * 1e9 for s in now.values())
        if now == before and not fresh:
            return
        before = now


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _hidden(path: Path, roots: list[Path]) -> bool:
    """Hidden files and folders are not indexed (as in ``scan``); their events are not worth a pass."""
    for root in roots:
        if _inside(path, root):
            return any(part.startswith(".") for part in path.relative_to(root).parts)
    return False
