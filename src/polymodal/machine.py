"""How much of the machine polymodal takes: a thread limit and a low-priority mode for background work.

``index --threads N`` caps every pool polymodal starts: ONNX Runtime's intra-op threads (encoders and OCR),
the decoding threads that overlap with inference, and torch's when torch runs. ``index --nice`` lowers the
process's CPU priority (nice 10) and puts its disk reads in the idle I/O class, as ``nice -n 10 ionice -c 3``
would, so a photo library can be indexed while the machine is in use. Both last for the process, and a
child process (the server's index worker) inherits them through ``POLYMODAL_THREADS`` and the scheduler.
"""

from __future__ import annotations

import logging
import os
import platform
import sys

from polymodal.errors import InputError

log = logging.getLogger("polymodal")

ENV = "POLYMODAL_THREADS"
#: the nice value of ``--nice``: well below interactive work, above the idlest batch jobs
NICE = 10
#: ioprio_set's syscall number per architecture (Linux); the idle class is 3
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "arm64": 30}
_IOPRIO_WHO_PROCESS, _IOPRIO_CLASS_IDLE, _IOPRIO_CLASS_SHIFT = 1, 3, 13


def set_thread_limit(threads: int | None) -> None:
    """Cap polymodal's thread pools at ``threads`` for this process and its children (None: no cap)."""
    if threads is None:
        os.environ.pop(ENV, None)
        return
    if threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    os.environ[ENV] = str(threads)
    if "torch" in sys.modules:  # else torch reads the cap when it is imported (torch_threads)
        torch_threads()


def thread_limit() -> int | None:
    """The cap set by ``set_thread_limit`` (or the environment), if any."""
    value = os.environ.get(ENV, "").strip()
    try:
        n = int(value) if value else None
    except ValueError:
        raise InputError(f"{ENV}={value!r} is not a number of threads") from None
    return n if n is None or n >= 1 else None


def torch_threads() -> None:
    """Apply the cap to torch, which keeps its own pool (called where polymodal imports torch)."""
    n = thread_limit()
    if n is not None:
        import torch

        torch.set_num_threads(n)


def lower_priority() -> list[str]:
    """Nice 10 and idle I/O for this process; what was done, for a log line (nothing raises: a system that
    refuses either still indexes, at normal priority)."""
    done = []
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if current < NICE:
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
        done.append(f"nice {max(current, NICE)}")
    except (OSError, AttributeError) as exc:
        log.info("could not lower the CPU priority: %s", exc)
    number = _IOPRIO_SET.get(platform.machine())
    if sys.platform.startswith("linux") and number is not None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(number, _IOPRIO_WHO_PROCESS, 0, _IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT) == 0:
            done.append("idle I/O")
        else:
            log.info("could not set the idle I/O class: %s", os.strerror(ctypes.get_errno()))
    return done
