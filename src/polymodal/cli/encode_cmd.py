"""``polymodal embed``, ``match`` and ``classify``: the encoder at work on files and texts."""

from __future__ import annotations

import argparse

from polymodal.cli.common import add_model_options, load_encoder, print_json, print_table, progress_bar
from polymodal.cli.remote import add_server_options, server_client
from polymodal.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed images and texts", description="Print or save embeddings.")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files")
    p.add_argument("--text", "-t", action="append", default=[], metavar="TEXT", help="a text (repeatable)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--out", "-o", metavar="FILE.npy", help="save a float32 (N, D) array: images, then texts")
    out.add_argument("--json", action="store_true", help='print [{"input": ..., "embedding": [...]}]')
    p.add_argument("--truncate", action="store_true", help="cut texts longer than the model's context")
    add_model_options(p)
    p.set_defaults(func=run_embed)

    p = sub.add_parser("match", help="score images against texts", description="Similarity of images to texts.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--text", "-t", action="append", required=True, metavar="TEXT", help="a text (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--truncate", action="store_true", help="cut texts longer than the model's context")
    add_model_options(p)
    p.set_defaults(func=run_match)

    p = sub.add_parser("classify", help="zero-shot classification", description="Label images zero-shot.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--labels", "-l", required=True, help="comma-separated labels, or @FILE with one per line")
    p.add_argument("--top", type=int, default=None, help="show the K best labels (default: all)")
    p.add_argument("--templates", default="openai", help="openai (80 prompts), simple (7), or a file, one per line")
    p.add_argument("--json", action="store_true", help='print [{"path": ..., "labels": [{"label", "score"}]}]')
    add_model_options(p)
    add_server_options(p)
    p.set_defaults(func=run_classify)


def _parse_labels(value: str) -> list[str]:
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as fh:
                return [ln.strip() for ln in fh if ln.strip()]
        except OSError as exc:
            raise InputError(f"cannot read labels file {value[1:]}: {exc.strerror}") from None
    return [x.strip() for x in value.split(",") if x.strip()]


def run_embed(args: argparse.Namespace) -> int:
    if not args.images and not args.text:
        raise InputError("nothing to embed: give image files and/or --text TEXT")
    import numpy as np

    enc = load_encoder(args)
    parts = []
    if args.images:
        parts.append(enc.encode_images(args.images, progress=progress_bar("images", "img")))
    if args.text:
        parts.append(enc.encode_texts(args.text, truncate=args.truncate, progress=progress_bar("texts", "text")))
    emb = np.concatenate(parts) if parts else np.zeros((0, enc.dim), np.float32)
    inputs = [*args.images, *args.text]
    if args.out:
        np.save(args.out, emb)
        print(f"saved {emb.shape[0]} x {emb.shape[1]} embeddings ({enc.name}) to {args.out}")
    elif args.json:
        print_json([{"input": i, "embedding": [float(x) for x in e]} for i, e in zip(inputs, emb)])
    else:
        for i, e in zip(inputs, emb):
            print(f"{i}\t[{', '.join(f'{x:.4f}' for x in e[:4])}, ...] ({len(e)} dims)")
    return 0


def run_match(args: argparse.Namespace) -> int:
    from polymodal.zeroshot import match

    res = match(args.images, args.text, load_encoder(args), truncate=args.truncate)
    if args.json:
        print_json([
            {"path": img, "texts": [{"text": t, "similarity": float(s), "prob": float(p)}
                                    for t, s, p in zip(args.text, srow, prow)]}
            for img, srow, prow in zip(args.images, res.similarity, res.probs)
        ])
        return 0
    rows = [[img, *(f"{s:.3f} ({p:.0%})" for s, p in zip(srow, prow))]
            for img, srow, prow in zip(args.images, res.similarity, res.probs)]
    print_table(rows, ["IMAGE", *args.text])
    return 0


def run_classify(args: argparse.Namespace) -> int:
    from polymodal.zeroshot import classify

    remote = server_client(args)
    if remote is not None:
        from polymodal.cli import remote as via

        results = via.classify(remote, args, _parse_labels(args.labels))
    else:
        results = classify(args.images, _parse_labels(args.labels), load_encoder(args), templates=args.templates,
                           top=args.top)
    if args.json:
        print_json([{"path": r.source, "labels": [{"label": x.label, "score": x.score} for x in r.labels]}
                    for r in results])
        return 0
    for r in results:
        print(f"{r.source}: " + ", ".join(f"{x.label} {x.score:.1%}" for x in r.labels))
    return 0
