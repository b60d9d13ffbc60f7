"""``polymodal serve``: the library behind an HTTP API and a web page (see docs/server.md)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from polymodal.cli.common import add_runtime_options
from polymodal.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a library over HTTP: API, web page, OpenAI-compatible /v1",
                       description="Serve the library: a web page at /, a JSON API under /api (OpenAPI at /docs) "
                       "and OpenAI-compatible /v1/embeddings and /v1/images/generations. Binds 127.0.0.1 by "
                       "default; any other address needs a token.")
    p.add_argument("--library", "-L", metavar="DIR", help="library directory (default: $POLYMODAL_LIBRARY, "
                   "the config file, else the user data dir)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--token", help="require this token on every request (default: $POLYMODAL_SERVER_TOKEN); "
                   "the environment variable keeps it out of the process list")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another name the Host header may carry (a reverse proxy's)")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN", help="allow this origin cross-site")
    p.add_argument("--root", action="append", default=[], metavar="DIR",
                   help="a folder index jobs may scan, besides those already in the library (repeatable)")
    p.add_argument("--generator", metavar="SPEC", help="enable /v1/images/generations and the page's generate view "
                   "with this generator (default: $POLYMODAL_GENERATOR or the config file's generator, else off)")
    p.add_argument("-m", "--model", metavar="SPEC", help="model of a new library (an existing one keeps its own)")
    add_runtime_options(p)
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload accepted (default 25)")
    p.add_argument("--watch", action="append", default=[], metavar="DIR",
                   help="keep the library in step with this folder while serving, as `index DIR --watch` "
                   "(repeatable; the folder may also be indexed by jobs)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from polymodal.config import load_settings
    from polymodal.server.config import ServerConfig
    from polymodal.server.run import run

    config = ServerConfig(
        library=Path(args.library).expanduser() if args.library else None, host=args.host, port=args.port,
        token=args.token or os.environ.get("POLYMODAL_SERVER_TOKEN") or None,
        allowed_hosts=tuple(args.allow_host), cors_origins=tuple(args.cors),
        index_roots=tuple(Path(r).expanduser() for r in [*args.root, *args.watch]),
        generator=args.generator or load_settings().generator, model=args.model, runtime=args.runtime,
        precision=args.precision,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
    ).check()
    print(f"polymodal: serving on http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/ "
          "(Ctrl-C stops)")
    watcher = _start_watcher(args, config.library) if args.watch else None
    try:
        run(config)
    finally:
        if watcher is not None:
            _stop(watcher)
    return 0


def _start_watcher(args: argparse.Namespace, library: Path | None) -> subprocess.Popen[bytes]:
    """``index DIR... --watch`` beside the server, in a process of its own: its passes hold the writer lock
    between the server's jobs, and the server reads each commit as it lands (reader.py)."""
    for folder in args.watch:
        if not Path(folder).expanduser().is_dir():
            raise InputError(f"--watch {folder}: not a folder")
    cmd = [sys.executable, "-m", "polymodal", "index", *[str(Path(f).expanduser()) for f in args.watch], "--watch"]
    if library is not None:
        cmd += ["--library", str(library)]
    for flag, value in (("--model", args.model), ("--runtime", args.runtime), ("--precision", args.precision)):
        if value:
            cmd += [flag, value]
    return subprocess.Popen(cmd)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # as Ctrl-C: a pass in flight records itself interrupted
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
