"""``polymodal eval retrieval|zeroshot``: numbers comparable with CLIP_benchmark, several models at once."""

from __future__ import annotations

import argparse
from pathlib import Path

from polymodal.cli.common import add_model_options, print_json, print_table, progress_bar
from polymodal.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate models", description="Evaluate one or more models on a dataset.")
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)

    r = tasks.add_parser("retrieval", help="text↔image Recall@K",
                         description="Recall@K both ways (CLIP_benchmark's definitions).")
    r.add_argument("--data", required=True, help="Karpathy .json, .csv/.jsonl of (image, caption), or a folder "
                   "of images with .txt caption sidecars")
    r.add_argument("--images", help="image root for a Karpathy file (default: its folder)")
    r.add_argument("--split", default="test", help="Karpathy split (default: test)")
    r.add_argument("--ks", default="1,5,10", help="comma-separated K values")
    _common(r)
    r.set_defaults(func=run_retrieval)

    z = tasks.add_parser("zeroshot", help="zero-shot classification accuracy",
                         description="acc@1, acc@5, mean per-class recall on a folder of class folders.")
    z.add_argument("--data", required=True, help="ROOT/<class name>/<images>")
    z.add_argument("--templates", default="openai", help="openai (80), simple (7), or a file, one per line")
    z.add_argument("--classnames", help="'imagenet' (CLIP's cleaned ImageNet names, for a val folder of WordNet "
                   "ids) or a file with one name per line in sorted folder order; default: the folder names")
    _common(z)
    z.set_defaults(func=run_zeroshot)


def _common(p: argparse.ArgumentParser) -> None:
    add_model_options(p, several=True)
    p.add_argument("--json", action="store_true", help="print results as JSON (a list when several models)")
    p.add_argument("--report", metavar="DIR", help="write report.md with plots and results.json to DIR")


def _encoders(args: argparse.Namespace):
    from polymodal.models import load_model

    for spec in args.model or [None]:
        yield load_model(spec, device=args.device, batch_size=args.batch_size, runtime=args.runtime,
                         precision=args.precision)


def _ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--ks takes comma-separated whole numbers, got {text!r}") from None
    if not ks:
        raise InputError("--ks is empty")
    return ks


def run_retrieval(args: argparse.Namespace) -> int:
    from polymodal.eval import evaluate_retrieval, load_retrieval
    from polymodal.eval.report import retrieval_report

    data = load_retrieval(args.data, args.images, args.split)
    ks = _ks(args.ks)
    results = [evaluate_retrieval(data, enc, ks, progress_bar(f"embedding images ({enc.name})", "img"))
               for enc in _encoders(args)]
    if args.report:
        retrieval_report(results, Path(args.report))
    if args.json:
        out = [r.summary() for r in results]
        print_json(out[0] if len(out) == 1 else out)
        return 0
    rows = [[r.model, *(f"{100 * v:.2f}" for v in r.text_to_image.values()),
             *(f"{100 * v:.2f}" for v in r.image_to_text.values())] for r in results]
    print(f"{data.name}: {len(data.images)} images, {len(data.captions)} captions")
    print_table(rows, ["MODEL", *(f"T2I {k}" for k in results[0].text_to_image),
                       *(f"I2T {k}" for k in results[0].image_to_text)])
    return 0


def run_zeroshot(args: argparse.Namespace) -> int:
    from polymodal.eval import evaluate_zeroshot, load_image_folder
    from polymodal.eval.report import zeroshot_report

    data = load_image_folder(args.data, args.classnames)
    results = [evaluate_zeroshot(data, enc, args.templates, progress_bar(f"embedding images ({enc.name})", "img"))
               for enc in _encoders(args)]
    if args.report:
        zeroshot_report(results, Path(args.report))
    if args.json:
        out = [r.summary() for r in results]
        print_json(out[0] if len(out) == 1 else out)
        return 0
    print(f"{data.name}: {len(data.images)} images, {len(data.classes)} classes")
    print_table([[r.model, f"{100 * r.acc1:.2f}", "—" if r.acc5 is None else f"{100 * r.acc5:.2f}",
                  f"{100 * r.mean_per_class_recall:.2f}"] for r in results],
                ["MODEL", "ACC@1", "ACC@5", "MEAN PER-CLASS RECALL"])
    return 0
