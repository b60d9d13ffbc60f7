"""One benchmark's section of benchmarks/RESULTS.md: written between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``, so each benchmark can rewrite its own numbers and leave the others' as they are.

Every section ends with the same stamp (``stamp()``): the script and its arguments, the commit (and whether the
tree had uncommitted changes), the date, the machine and the load average, so a figure can always be traced to
what ran it and read against how busy the machine was."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE, check=False).stdout.strip()
    except OSError:
        return ""


def machine() -> str:
    """CPU model, cores, memory, OS and Python: enough to tell two machines apart."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(ln.split()[1] for ln in fh if ln.startswith("MemTotal")))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def stamp(load_before: str | None = None) -> str:
    """One line: script and arguments, commit, date, machine, load average (1/5/15 min) now and, if given, at
    the start of the run (``load_before = load_average()`` taken then)."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", str(HERE.parent / "src"), str(HERE))
    script = " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *(shlex.quote(a) for a in sys.argv[1:])])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = f"load average {load_before} at the start, {load_average()} at the end" if load_before else \
        f"load average {load_average()} at the end"
    return (f"_Written by `python {script}` at commit {commit}{' with uncommitted changes' if dirty else ''}, "
            f"{when}. Machine: {machine()}; {load} (1/5/15 min)._")


def write_section(path: Path, name: str, text: str, *, load_before: str | None = None) -> None:
    """Put ``text`` and the stamp in ``name``'s section of ``path``, in place of the old one, else at the end."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{start}\n{text.rstrip()}\n\n{stamp(load_before)}\n{end}"
    if start in body and end in body:
        head, rest = body.split(start, 1)
        body = head + section + rest.split(end, 1)[1]
    else:
        body = body.rstrip() + "\n\n" + section + "\n"
    path.write_text(body)
