"""``polymodal models``: what can be loaded."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from polymodal.cli.common import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list loadable models", description="List the models polymodal can load.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--available", action="store_true", help="only models loadable now without the network")
    p.add_argument("--exports", action="store_true",
                   help="list the cached ONNX exports and their parity against torch instead")
    p.set_defaults(func=run)
    sub_models = p.add_subparsers(dest="models_command", metavar="ACTION")
    e = sub_models.add_parser(
        "export", help="write a self-contained bundle that runs without torch",
        description="Export SPEC's networks to ONNX (checked against torch), with its tokenizer, preprocessing "
        "and metadata, into DIR. DIR is then a model spec everywhere (--model DIR, load_model(DIR)) and loads "
        "where torch cannot be imported.")
    e.add_argument("spec", metavar="SPEC", help="model spec (lite, hf:ID_OR_DIR, open_clip:ARCH/TAG, a directory)")
    e.add_argument("out", metavar="DIR", help="new (or empty) directory for the bundle")
    e.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="int8: networks that pass the int8 parity check are quantised (default fp32)")
    e.add_argument("--json", action="store_true", help="print the bundle's metadata as JSON")
    e.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    import json

    from polymodal.models.bundle import BUNDLE_FILE
    from polymodal.models.exports import export

    out = export(args.spec, args.out, args.precision)
    meta = json.loads((out / BUNDLE_FILE).read_text(encoding="utf-8"))
    if args.json:
        print_json(meta)
        return 0
    nets = ", ".join(f"{n}: {e['runtime']} (min cosine {e['parity']['min_cosine']:.4f})"
                     for n, e in meta["networks"].items())
    print(f"{out}: {meta['source']['spec']}, dim {meta['dim']}; {nets}")
    print(f"use it as a model spec: --model {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from polymodal.models import list_models
    from polymodal.models.default import DEFAULT_MODEL

    if args.exports:
        return _exports(args)

    entries = [e for e in list_models() if e.available or not args.available]
    if args.json:
        print_json([{**asdict(e), "default": e.name == DEFAULT_MODEL} for e in entries])
        return 0
    rows = [[e.name + (" (default)" if e.name == DEFAULT_MODEL else ""), "yes" if e.available else "no",
             e.description] for e in entries]
    print_table(rows, ["MODEL", "OFFLINE", "DESCRIPTION"])
    print("\nA local directory with a transformers or open_clip model loads too: --model /path/to/model")
    return 0


def _exports(args: argparse.Namespace) -> int:
    from polymodal.models.runtime import cache_dir_reports

    reports = cache_dir_reports()
    if args.json:
        print_json(reports)
        return 0
    rows = [[r["folder"], r["network"], r["precision"], f"{r['min_cosine']:.4f}", f"{r['mean_cosine']:.4f}",
             f"{r['top10_agreement']:.2f}", "yes" if r["passed"] else "no (falls back)"] for r in reports]
    print_table(rows, ["EXPORT", "NETWORK", "PRECISION", "MIN COS", "MEAN COS", "TOP-10 KEPT", "USED"])
    return 0
