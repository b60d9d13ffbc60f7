"""``polymodal models``: what can be loaded."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from polymodal.cli.common import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list loadable models", description="List the models polymodal can load.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--available", action="store_true", help="only models loadable now without the network")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from polymodal.models import list_models
    from polymodal.models.default import DEFAULT_MODEL

    entries = [e for e in list_models() if e.available or not args.available]
    if args.json:
        print_json([{**asdict(e), "default": e.name == DEFAULT_MODEL} for e in entries])
        return 0
    rows = [[e.name + (" (default)" if e.name == DEFAULT_MODEL else ""), "yes" if e.available else "no",
             e.description] for e in entries]
    print_table(rows, ["MODEL", "OFFLINE", "DESCRIPTION"])
    print("\nA local directory with a transformers or open_clip model loads too: --model /path/to/model")
    return 0
