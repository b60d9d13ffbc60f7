"""The ``polymodal`` command: argument parsing, error translation and exit codes.

Exit codes: 0 success, 1 other polymodal error, 2 usage or configuration error, 3 model not loadable,
4 bad input (file, text, labels), 130 interrupted. Each command group lives in its own module with a
``register(subparsers)`` function; the library never prints, so everything shown comes from here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import NoReturn

from polymodal import __version__
from polymodal.errors import PolymodalError

#: command-group modules under polymodal.cli, in the order their commands appear in --help
COMMAND_MODULES = (
    "models_cmd", "encode_cmd", "library_cmd", "train_cmd", "train_finetune_cmd", "eval_cmd", "generate_cmd",
    "serve_cmd", "check_cmd", "transcribe_cmd", "video_cmd", "ocr_cmd", "explain_cmd",
)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"polymodal: {record.getMessage()}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polymodal",
        description="Multimodal models on your own machine: embed, match, classify and search images and text.",
        epilog="exit codes: 0 ok, 1 error, 2 usage/config, 3 model not loadable, 4 bad input, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"polymodal {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show informational messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(f"polymodal.cli.{name}").register(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log = logging.getLogger("polymodal")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # main() also runs inside other programs (tests, notebooks, the server's job runner): the logger is set
    # up for this call only and handed back as it was, so a later caller's logging is not silently rerouted.
    log = logging.getLogger("polymodal")
    saved_handlers, saved_level, saved_propagate = log.handlers[:], log.level, log.propagate
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except PolymodalError as exc:
        print(f"polymodal: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        # on a terminal a progress bar may be mid-line (bars are drawn only there): start a line of our own
        print(("\n" if sys.stderr.isatty() else "") + "polymodal: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        log.handlers[:] = saved_handlers
        log.setLevel(saved_level)
        log.propagate = saved_propagate


def run() -> NoReturn:
    """The ``polymodal`` executable and ``python -m polymodal``: ``main()``, then a quick exit.

    After a command, Python's own shutdown spends ~0.15 s tearing down what the command loaded (Lance's
    runtime threads above all, then ONNX Runtime's sessions): a sixth of a search's second, for nothing the
    user sees. Exit handlers still run (logging, temporary directories, Ray) and output is flushed; the
    teardown is skipped only when no other thread is still working, which a plain exit would wait for.
    """
    code = main()
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a reader that went away (``| head``) or a closed stream: nothing left to say
    os._exit(code)
