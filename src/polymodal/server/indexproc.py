"""An index job in a child process at lower CPU priority, so searches keep the cores they need.

Measured (benchmarks/RESULTS.md, serve_load): an index job in a thread of the server competes with searches
for the same cores and the GIL, and pushes p99 search latency past 100 ms even at 5 req/s. A child process
under ``os.nice`` embeds only with the CPU that searches leave. Progress comes back over a queue; a cancel
sets an event the child checks at each batch and turns into the KeyboardInterrupt the library records as
an interrupted job (batches committed so far stay).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable
from typing import Any

from polymodal.errors import PolymodalError
from polymodal.server.jobs import Cancelled

#: niceness of the child (0-19; higher yields more)
NICE = 10


def _child(root: str, paths: list[str], out: Any, cancel: Any, runtime: str | None = None,
           precision: str | None = None) -> None:
    from polymodal.library import Library

    try:
        os.nice(NICE)
    except OSError:
        pass  # not allowed here: run at normal priority

    def progress(done: int, total: int) -> None:
        out.put(("progress", done, total))
        if cancel.is_set():
            raise KeyboardInterrupt

    try:
        report = Library.open(root, create=False, runtime=runtime, precision=precision).add(paths, progress=progress)
        out.put(("done", report.to_dict()))
    except KeyboardInterrupt:
        out.put(("cancelled",))
    except PolymodalError as exc:
        out.put(("error", type(exc).__name__, str(exc)))
    except Exception as exc:  # noqa: BLE001 - the parent must hear of it, whatever it was
        out.put(("error", "InternalError", f"internal error: {type(exc).__name__}"))


class ChildReport:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return self.data


def index_in_child(root: str, paths: list[str], progress: Callable[[int, int], None], runtime: str | None = None,
                   precision: str | None = None, started: Callable[[int], None] | None = None) -> ChildReport:
    """Run ``Library.open(root).add(paths)`` in a niced child; ``progress`` may raise to cancel it. ``runtime``
    and ``precision``: how the child loads its model (the server's own options)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no fork of a process holding threads, onnxruntime and LanceDB handles
    out, cancel = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_child, args=(root, paths, out, cancel, runtime, precision), daemon=True)
    proc.start()
    if started is not None and proc.pid is not None:
        started(proc.pid)  # the job can pause this process (SIGSTOP) and resume it
    cancelled = False
    try:
        while True:
            try:
                msg = out.get(timeout=0.5)
            except queue.Empty:
                if not proc.is_alive():
                    raise PolymodalError(
                        f"the index process ended without a result (exit code {proc.exitcode})") from None
                continue
            if msg[0] == "progress":
                try:
                    progress(msg[1], msg[2])
                except Cancelled:
                    # keep reading until the child stops, so the counts cover every batch it committed
                    cancelled = True
                    cancel.set()
            elif msg[0] == "done" and not cancelled:
                return ChildReport(msg[1])
            elif msg[0] in ("done", "cancelled"):
                raise Cancelled()
            else:
                raise PolymodalError(msg[2])
    except BaseException:
        cancel.set()
        raise
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
            proc.join()
