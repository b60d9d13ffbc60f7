"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and the model registry load only when a command needs a model
    from polymodal.models.base import Encoder


def add_model_options(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """--model and the runtime options; ``several``: --model may repeat (a list, None when not given)."""
    parser.add_argument(
        "-m", "--model", action="append" if several else "store",
        help="model spec (lite, hf:ID_OR_DIR, open_clip:ARCH/TAG, or a directory); "
        "default: $POLYMODAL_MODEL, the config file, else CLIP ViT-B/32 with an offline fallback to lite"
        + ("; repeat to compare models side by side" if several else ""),
    )
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--batch-size", type=int, help="images or texts per forward pass")
    add_runtime_options(parser)


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """--runtime and --precision, worded the same in every command that loads a model."""
    parser.add_argument("--runtime", choices=("torch", "onnx"),
                        help="where the networks run (default: onnx on CPU, torch on GPU)")
    parser.add_argument("--precision", choices=("fp32", "int8"), help="int8: ONNX dynamic quantisation")


def add_library_option(parser: argparse.ArgumentParser) -> None:
    """--library, worded the same in every command that opens one."""
    parser.add_argument("--library", "-L", metavar="DIR",
                        help="library directory (default: $POLYMODAL_LIBRARY, the config file, else the user data dir)")


def hit_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The filters of ``search`` and ``similar`` as keyword arguments, for a local library or a server."""
    return {"k": args.k, "after": args.after, "before": args.before, "path": args.path, "kind": args.kind,
            "tags": args.tag, "min_score": args.min_score, "sort": args.sort}


def load_encoder(args: argparse.Namespace) -> Encoder:
    from polymodal.models import load_model

    return load_model(
        args.model, device=args.device, batch_size=args.batch_size, runtime=getattr(args, "runtime", None),
        precision=getattr(args, "precision", None),
    )


def progress_bar(desc: str, unit: str = "item") -> Callable[[int, int], None]:
    """A progress callback drawing a tqdm bar on stderr, shown only on a terminal."""
    from tqdm import tqdm

    bar: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, leave=False))
        bar[0].update(done - bar[0].n)
        if done >= total:
            bar[0].close()

    return update


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
