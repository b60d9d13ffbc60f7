"""Running a media decoder in a child process the caller can kill: the caller's side of ``media.worker``.

Decoding untrusted media is the riskiest thing polymodal does (FFmpeg's demuxers are large C code, and a
hostile file can make one loop, crawl or crash), so audio and video are never decoded in the caller's
process. ``run_worker`` starts ``python -P -m polymodal.media.worker KIND /abs/path`` in a session of its
own, sends the decoder's parameters as JSON on stdin, and reads back one JSON header line followed by raw
bytes. When the time limit passes, or the caller is interrupted, the child's whole process group is killed:
whatever state FFmpeg was in, the caller is never left hung and no decoder is left running.

Only JSON and raw bytes cross the pipe, never pickle, so even a child that a file managed to subvert can
send nothing that runs in the caller. Inside the child, the decoders open files with ``open_local``: local
files only, through a list of allowed demuxers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

from polymodal.errors import MediaDecodeError, MediaTimeoutError

#: the directory holding the polymodal package, so the decoding child imports this same copy
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check_path(path: str | os.PathLike[str]) -> str:
    """The absolute path of a readable, non-empty local file, or MediaDecodeError saying why not."""
    source = os.fspath(path)
    if "://" in source:
        raise MediaDecodeError(source, "only local files are read, not URLs")
    if not os.path.exists(source):
        raise MediaDecodeError(source, "no such file")
    if os.path.isdir(source):
        raise MediaDecodeError(source, "it is a directory")
    if not os.path.isfile(source):
        raise MediaDecodeError(source, "not a regular file")
    if os.path.getsize(source) == 0:
        raise MediaDecodeError(source, "the file is empty (0 bytes)")
    if not os.access(source, os.R_OK):
        raise MediaDecodeError(source, "permission denied")
    return os.path.abspath(source)


def run_worker(kind: str, path: str | os.PathLike[str], params: dict[str, Any],
               time_limit: float) -> tuple[dict[str, Any], bytes]:
    """Decode ``path`` with the ``kind`` decoder of ``media.worker`` in a child process: its header and payload.

    Raises MediaDecodeError when ``path`` is not a readable local file, with the decoder's own reason when
    it could not read the media, and "the decoder failed (...)" when the child crashed or was killed;
    MediaTimeoutError when it runs past ``time_limit`` seconds.
    """
    source = os.fspath(path)
    abspath = check_path(path)
    # -P: the working directory (which may hold anything, e.g. an ``av.py`` next to the media) is not put on
    # sys.path; polymodal is found where this process found it, installed or not.
    cmd = [sys.executable, "-P", "-m", "polymodal.media.worker", kind, abspath]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    # A new session, so the child and anything FFmpeg might start are killed as one group.
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(json.dumps(params).encode(), timeout=time_limit)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise MediaTimeoutError(source, time_limit) from None
    except BaseException:  # Ctrl-C or the like: never leave the decoder running
        _kill(proc)
        raise
    line, _, payload = out.partition(b"\n")
    try:
        header = json.loads(line) if line else None
    except ValueError:  # a child that died mid-write; reported below with how it ended
        header = None
    if isinstance(header, dict) and "error" in header:
        raise MediaDecodeError(source, str(header["error"]))
    if proc.returncode != 0 or not isinstance(header, dict):
        raise MediaDecodeError(source, f"the decoder failed ({_why(proc.returncode, err)})")
    return header, payload


def open_local(abspath: str, demuxers: str) -> Any:
    """In the child: open ``abspath`` with PyAV as a local file only, with only the ``demuxers`` allowed.

    "file:" makes FFmpeg read the name as a path whatever it looks like ("http:...", "concat:..." are file
    names here); the protocol whitelist stops nested references, the format whitelist playlist demuxers (HLS,
    concat lists) that would open other files or URLs. Tags that are not UTF-8 must not fail the open
    (found by benchmarks/fuzz_ingest.py).
    """
    import av

    return av.open("file:" + abspath, options={"protocol_whitelist": "file", "format_whitelist": demuxers},
                   metadata_errors="replace")


def _why(returncode: int, stderr: bytes) -> str:
    """How a child that sent no answer ended: the signal that killed it, else its last word on stderr."""
    if returncode < 0:
        return f"the decoder was killed by signal {-returncode}"
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"the decoder exited with status {returncode}"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: its group is only the decoder
    except ProcessLookupError:
        pass
    proc.communicate()
