"""``polymodal eval retrieval|zeroshot|generation``: numbers comparable with CLIP_benchmark, several models at once."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from polymodal.cli.common import add_model_options, print_json, print_table, progress_bar
from polymodal.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate models", description="Evaluate one or more models on a dataset.")
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)

    r = _task(tasks, "retrieval", run_retrieval, help="text↔image Recall@K",
              data="Karpathy .json, .csv/.jsonl of (image, caption), or a folder of images with .txt caption sidecars")
    r.add_argument("--images", help="image root for a Karpathy file (default: its folder)")
    r.add_argument("--split", default="test", help="Karpathy split (default: test)")
    r.add_argument("--ks", default="1,5,10", help="comma-separated K values")

    z = _task(tasks, "zeroshot", run_zeroshot, help="zero-shot classification accuracy",
              data="ROOT/<class name>/<images>")
    z.add_argument("--templates", default="openai", help="openai (80), simple (7), or a file, one per line")
    z.add_argument("--classnames", help="'imagenet' (CLIP's cleaned ImageNet names, for a val folder of WordNet "
                   "ids) or a file with one name per line in sorted folder order; default: the folder names")

    g = _task(tasks, "generation", run_generation, help="CLIPScore, diversity, FID/KID of generated images",
              data='a folder saved by `polymodal generate` (prompts in the PNGs) or a .jsonl of {"image", "prompt"} '
              "rows")
    g.add_argument("--reference", metavar="DIR", help="real images to compute FID and KID against")
    g.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100, as `polymodal fid`)")
    g.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size, capped at the smaller set")

    m = _task(tasks, "moments", run_moments, help="moment retrieval in videos: R@1 at IoU 0.5/0.7, mean IoU",
              data='a .jsonl of {"video", "query", "start", "end"} rows (video paths relative to the file\'s '
              "folder, times in seconds)")
    m.add_argument("--fusion", choices=["weighted", "rrf"], default="weighted", help="visual+speech fusion")
    m.add_argument("--modality", choices=["visual", "speech"], help="only one kind of evidence")
    m.add_argument("--no-speech", dest="speech", action="store_false", help="index the videos without transcribing")

    o = _task(tasks, "ocr", run_ocr, help="OCR: character error rate and line accuracy",
              data='a .jsonl of {"image": path, "lines": ["text", ...]} rows, or a folder of images with .txt '
              "sidecars (one line of text per line)")
    from polymodal.cli.ocr_cmd import add_ocr_options

    add_ocr_options(o)
    o.add_argument("--json", action="store_true", help="print results as JSON")

    # Added last so that in each task's --help its own options come first, the shared ones after them.
    for task in (r, z, g, m):
        add_model_options(task, several=True)
        task.add_argument("--json", action="store_true", help="print results as JSON (a list when several models)")
        task.add_argument("--report", metavar="DIR", help="write report.md with plots and results.json to DIR")


def _task(tasks: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int], *, help: str,
          data: str) -> argparse.ArgumentParser:
    """One ``eval TASK`` parser with its required --data; ``func``'s docstring is its description (--help
    rewraps it, as click does a command's)."""
    p = tasks.add_parser(name, help=help, description=func.__doc__)
    p.add_argument("--data", required=True, help=data)
    p.set_defaults(func=func)
    return p


def _encoders(args: argparse.Namespace):
    from polymodal.models import load_model

    for spec in args.model or [None]:
        yield load_model(spec, device=args.device, batch_size=args.batch_size, runtime=args.runtime,
                         precision=args.precision)


def _report_and_json(args: argparse.Namespace, results: Sequence[Any],
                     write_report: Callable[[Any, Path], Path]) -> bool:
    """--report's files and --json's output; True when --json printed (the table is then left out)."""
    if args.report:
        write_report(results, Path(args.report))
    if args.json:
        out = [r.summary() for r in results]
        print_json(out[0] if len(out) == 1 else out)
        return True
    return False


def _ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--ks takes comma-separated whole numbers, got {text!r}") from None
    if not ks:
        raise InputError("--ks is empty")
    return ks


def run_retrieval(args: argparse.Namespace) -> int:
    """Recall@K both ways (CLIP_benchmark's definitions)."""
    from polymodal.eval import evaluate_retrieval, load_retrieval
    from polymodal.eval.report import retrieval_report

    data = load_retrieval(args.data, args.images, args.split)
    ks = _ks(args.ks)
    results = [evaluate_retrieval(data, enc, ks, progress_bar(f"embedding images ({enc.name})", "img"))
               for enc in _encoders(args)]
    if _report_and_json(args, results, retrieval_report):
        return 0
    rows = [[r.model, *(f"{100 * v:.2f}" for v in r.text_to_image.values()),
             *(f"{100 * v:.2f}" for v in r.image_to_text.values())] for r in results]
    print(f"{data.name}: {len(data.images)} images, {len(data.captions)} captions")
    print_table(rows, ["MODEL", *(f"T2I {k}" for k in results[0].text_to_image),
                       *(f"I2T {k}" for k in results[0].image_to_text)])
    return 0


def run_zeroshot(args: argparse.Namespace) -> int:
    """acc@1, acc@5, mean per-class recall on a folder of class folders."""
    from polymodal.eval import evaluate_zeroshot, load_image_folder
    from polymodal.eval.report import zeroshot_report

    data = load_image_folder(args.data, args.classnames)
    results = [evaluate_zeroshot(data, enc, args.templates, progress_bar(f"embedding images ({enc.name})", "img"))
               for enc in _encoders(args)]
    if _report_and_json(args, results, zeroshot_report):
        return 0
    print(f"{data.name}: {len(data.images)} images, {len(data.classes)} classes")
    print_table([[r.model, f"{100 * r.acc1:.2f}", "—" if r.acc5 is None else f"{100 * r.acc5:.2f}",
                  f"{100 * r.mean_per_class_recall:.2f}"] for r in results],
                ["MODEL", "ACC@1", "ACC@5", "MEAN PER-CLASS RECALL"])
    return 0


def run_generation(args: argparse.Namespace) -> int:
    """CLIPScore of each image against its prompt, diversity among a prompt's images, and FID/KID against a
    reference folder, under each --model (the judge and the feature extractor; numbers hold only under the
    model named with them)."""
    from polymodal.eval.generation import evaluate_generation, load_generated
    from polymodal.eval.report_generation import generation_report

    data = load_generated(args.data)
    if args.reference and not Path(args.reference).is_dir():
        raise InputError(f"--reference {args.reference} is not a folder of images")
    results = [evaluate_generation(data, enc, args.reference, kid_subsets=args.kid_subsets,
                                   kid_subset_size=args.kid_subset_size,
                                   progress=progress_bar(f"embedding images ({enc.name})", "img"))
               for enc in _encoders(args)]
    if _report_and_json(args, results, generation_report):
        return 0
    print(f"{data.name}: {len(data.images)} images, {results[0].prompts} prompts"
          + (f"; reference {args.reference} ({results[0].reference_images} images)" if args.reference else ""))

    def num(v: float | None, digits: int = 4) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    print_table([[r.model, num(r.clip_score["mean"]), num(r.diversity), num(r.fid),
                  num(r.kid["mean"] if r.kid else None, 6)] for r in results],
                ["MODEL (EXTRACTOR)", "CLIPSCORE", "DIVERSITY", "FID", "KID"])
    return 0


def run_moments(args: argparse.Namespace) -> int:
    """Index the videos of a JSONL of {video, query, start, end} rows into a temporary library with each
    --model (shots, segments, speech), search each query in its own video, and compare the top moment with
    the truth by temporal IoU."""
    from polymodal.eval.moments import evaluate_moments, load_moments, moments_report

    data = load_moments(args.data)
    results = [evaluate_moments(data, enc, fusion=args.fusion, modality=args.modality, speech=args.speech,
                                progress=progress_bar(f"indexing videos ({enc.name})", "file"))
               for enc in _encoders(args)]
    if _report_and_json(args, results, moments_report):
        return 0
    keys = list(results[0].recall)
    print(f"{data.name}: {len(data.queries)} queries, {len(data.videos)} videos")
    print_table([[r.model, *(f"{100 * r.recall[k]:.1f}" for k in keys), f"{r.mean_iou:.3f}"] for r in results],
                ["MODEL", *(k.upper() for k in keys), "MEAN IOU"])
    for r in results:
        for f in r.failures:
            print(f"  {r.model}: could not index {f['path']}: {f['reason']}")
    return 0


def run_ocr(args: argparse.Namespace) -> int:
    """Read the text of each picture and compare it with the truth: character error rate (edit distance over
    the true length, texts NFKC-normalised, spaces removed, case folded) and the share of true lines read
    exactly."""
    from polymodal.cli.ocr_cmd import ocr_kwargs
    from polymodal.ocr.evaluate import evaluate_ocr

    r = evaluate_ocr(args.data, progress=progress_bar("reading text", "img"), **ocr_kwargs(args))
    if args.json:
        print_json(r.summary())
        return 0
    print(f"{r.data}: {r.images} images, {r.lines} lines")
    print_table([[r.engine, f"{100 * r.cer:.2f}", f"{100 * r.line_accuracy:.1f}"]], ["ENGINE", "CER %", "LINE ACC %"])
    return 0
