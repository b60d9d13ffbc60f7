"""``polymodal check`` and ``polymodal repair``: verify a library, and rebuild what is broken from the files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from polymodal.cli.common import add_library_option, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="verify a library's tables, links, embeddings and thumbnails",
                       description="Read every table of a library and check its invariants: each files row points "
                       "to an item that lists it, each item has a unit embedding of the model's width and a "
                       "thumbnail that decodes, each video or audio item has its media row and segments with "
                       "unit embeddings, sane times and thumbnails, and each segment belongs to such an item. "
                       "Exit status 0 when nothing is broken, 1 when `polymodal repair` is needed. Never writes.")
    add_library_option(p)
    p.add_argument("--quick", action="store_true", help="skip decoding the thumbnails")
    p.add_argument("--files", action="store_true", help="also re-hash every indexed file on disk")
    p.add_argument("--json", action="store_true", help='print {"ok", "items", "files", "segments", "findings": [...]}')
    p.set_defaults(func=run_check)

    p = sub.add_parser("repair", help="rebuild what `polymodal check` finds broken",
                       description="Roll unreadable tables back to their newest readable version, drop tables "
                       "left by an interrupted reindex, rebuild bad embeddings and thumbnails from the files, "
                       "index again paths whose rows point nowhere and videos or audio whose segments are broken, "
                       "and drop segments of items not in the library. Good items are never removed or "
                       "re-embedded.")
    add_library_option(p)
    p.add_argument("--json", action="store_true", help="print what was done and the check after it")
    p.set_defaults(func=run_repair)


def _open(args: argparse.Namespace) -> Any:
    from polymodal.library import Library

    return Library.open(args.library, create=False)


def _counts(report: Any) -> str:
    return f"{report.path}: {report.items} items, {report.files} files, {report.segments} segments"


def _print_findings(report: Any) -> None:
    for f in report.findings:
        print(f"  {f.severity:8} {f.kind}: {f.reason}")


def run_check(args: argparse.Namespace) -> int:
    from polymodal.library.check import check_library

    lib = _open(args)
    report = check_library(lib.store, thumbnails=not args.quick, verify_files=args.files)
    if args.json:
        print_json(report.to_dict())
    else:
        state = "ok" if report.ok else f"{len(report.errors)} problem(s); run `polymodal repair`"
        print(f"{_counts(report)}: {state}")
        _print_findings(report)
    return 0 if report.ok else 1


def run_repair(args: argparse.Namespace) -> int:
    from polymodal.library.check import repair_library

    lib = _open(args)
    out = repair_library(lib, progress=lambda msg: print(f"polymodal: {msg}", file=sys.stderr))
    if args.json:
        print_json(out.to_dict())
        return 0 if out.after.ok else 1
    for line in out.rolled_back:
        print(f"rolled back {line}")
    for name in out.tables_dropped:
        print(f"dropped stale table {name}")
    print(f"rebuilt {out.reembedded} item(s) from their files, indexed {out.reindexed} path(s) again, "
          f"lost {len(out.lost)} item(s) with no file left")
    if out.orphans_dropped:
        print(f"dropped the segments of {out.orphans_dropped} item(s) not in the library")
    state = "ok" if out.after.ok else f"{len(out.after.errors)} problem(s) remain"
    print(f"{_counts(out.after)}: {state}")
    _print_findings(out.after)
    return 0 if out.after.ok else 1
