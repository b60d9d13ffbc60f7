"""Index jobs run in a background thread, one at a time, with progress a client can poll, a pause and a cancel.

A job indexes with its own ``Library`` over the same encoder, so searches keep running on the server's
library meanwhile (they see each batch once it is committed). Cancelling raises from the progress callback;
the library treats it like Ctrl-C: batches committed so far stay, and the job is recorded as interrupted.
Pausing stops the index process where it stands (SIGSTOP; SIGCONT resumes it); a job indexing in the
server's own process waits at its next batch instead. A paused job keeps the library's writer lock.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polymodal.errors import AccessDeniedError, InputError, LibraryLockedError, NotFoundError, PolymodalError

log = logging.getLogger("polymodal.server")


class Cancelled(KeyboardInterrupt):
    """Raised inside the indexer to stop it; a KeyboardInterrupt so the library keeps what it committed."""


@dataclass
class Job:
    id: str
    paths: list[str]
    state: str = "queued"  # queued, running, paused, done, failed, cancelled
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    cancel_requested: bool = False
    pid: int | None = None  # the index process, when the job runs in one (it is what a pause stops)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "paths": self.paths, "state": self.state, "done": self.done, "total": self.total,
                "started": self.started, "finished": self.finished, "report": self.report, "error": self.error}


def allowed_paths(paths: list[str], roots: list[str]) -> list[str]:
    """Each path resolved, and only if it lies under one of ``roots`` (which are already resolved)."""
    if not roots:
        raise AccessDeniedError("this server may not index any folder: start it with --root DIR to allow one")
    out = []
    for p in paths:
        if not isinstance(p, str) or not p or "\x00" in p:
            raise InputError("each path must be a non-empty string")
        if not os.path.isabs(p):
            # it would be resolved against the server's working folder, which a client neither sees nor chose
            raise InputError(f"{p[:200]!r} is not an absolute path; give the folder's full path on the server "
                             f"(it may index under {', '.join(roots)})")
        real = os.path.realpath(p)
        if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            raise AccessDeniedError(f"{p} is outside the folders this server may index")
        out.append(real)
    return out


class JobRunner:
    """Starts index jobs with ``index(paths, progress)``, keeping the last few for clients to read."""

    def __init__(self, index: Callable[..., Any], keep: int = 50) -> None:
        """``index(paths, progress, started)``: indexes ``paths``, calling ``progress(done, total)`` (which may
        raise Cancelled) and ``started(pid)`` once its index process runs, if it runs in one."""
        self._index = index
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def start(self, paths: list[str]) -> Job:
        with self._lock:
            if any(j.state in ("queued", "running", "paused") for j in self._jobs.values()):
                raise LibraryLockedError("an index job is already running; wait for it, or cancel it")
            job = Job(secrets.token_hex(8), paths)
            self._jobs[job.id] = job
            for old in list(self._jobs)[: max(0, len(self._jobs) - self._keep)]:
                del self._jobs[old]
        threading.Thread(target=self._run, args=(job,), name=f"index-{job.id}", daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            while job.state == "paused" and not job.cancel_requested:
                time.sleep(0.1)  # indexing in this process: the pause takes effect between batches
            if job.cancel_requested:
                raise Cancelled()

        def started(pid: int) -> None:
            job.pid = pid

        job.state = "running"
        try:
            if job.cancel_requested:
                raise Cancelled()
            report = self._index(job.paths, progress, started)
            job.report = report.to_dict() if hasattr(report, "to_dict") else None
            job.state = "done"
        except Cancelled:
            job.state = "cancelled"
        except PolymodalError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:
            log.error("index job %s failed", job.id, exc_info=exc)
            job.state, job.error = "failed", "internal error (see the server's log)"
        finally:
            job.finished, job.pid = time.time(), None

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no index job {job_id[:40]!r} on this server")
        return job

    def list(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: -j.started)

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state in ("queued", "running", "paused"):
            job.cancel_requested = True
            if job.state == "paused":
                self.resume(job_id)  # a stopped process cannot hear the cancel
        return job

    def pause(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self._lock:
            if job.state != "running":
                raise InputError(f"job {job_id} is {job.state}; only a running job can be paused")
            job.state = "paused"
            if job.pid is not None:
                _signal(job.pid, signal.SIGSTOP)
        return job

    def resume(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self._lock:
            if job.state == "paused":
                if job.pid is not None:
                    _signal(job.pid, signal.SIGCONT)
                job.state = "running"
        return job

    def wait(self, job_id: str, timeout: float) -> Job:
        """For tests and the CLI: block until the job ends or ``timeout`` passes."""
        end = time.monotonic() + timeout
        job = self.get(job_id)
        while job.state in ("queued", "running", "paused") and time.monotonic() < end:
            time.sleep(0.05)
        return job


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # the process ended meanwhile: its job is finishing
