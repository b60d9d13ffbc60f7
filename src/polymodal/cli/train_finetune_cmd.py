"""``polymodal finetune``: contrastive fine-tuning of a dual encoder on image–text pairs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from polymodal.cli.common import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune an encoder on your image–text pairs",
        description="Contrastive fine-tuning (symmetric InfoNCE) of a dual encoder on image–text pairs, with "
        "Recall@1/5/10 on held-out pairs before and after. The result is a directory that works as --model.")
    p.add_argument("--data", required=True, metavar="PAIRS",
                   help="JSONL/CSV rows with image, text (or caption)[, split], or a folder of images with .txt "
                   "caption sidecars")
    p.add_argument("-m", "--model", required=True, metavar="SPEC", help="model to start from (lite, hf:..., a dir)")
    p.add_argument("--out", "-o", default="finetuned-model", metavar="DIR", help="output model directory")
    p.add_argument("--mode", default="projections", choices=("projections", "lit", "full"),
                   help="what trains: projection heads only (default), the text side with a locked image tower "
                   "(LiT), or everything")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32, help="pairs per micro-batch (the in-batch negatives)")
    p.add_argument("--accum-steps", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, help="learning rate (default: 1e-3 projections, 1e-5 lit/full)")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out share when the pairs give no split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wise-alpha", type=float, default=1.0, metavar="A",
                   help="WiSE-FT: mix A of the fine-tuned weights with 1-A of the pretrained ones (default 1)")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on GPU")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--skip-bad", action="store_true", help="report bad pairs and go on without them")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true", help='print {"before": {...}, "after": {...}, "output": DIR}')
    p.set_defaults(func=run_finetune)


def _step_bar() -> Any:
    from tqdm import tqdm

    bar: list[Any] = []

    def update(step: int, total: int, loss: float) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc="fine-tuning", unit="step", file=sys.stderr, disable=None,
                            leave=False, initial=step - 1))
        bar[0].update(step - bar[0].n)
        bar[0].set_postfix(loss=f"{loss:.3f}")

    def close() -> None:
        for b in bar:
            b.close()

    return update, close


def run_finetune(args: argparse.Namespace) -> int:
    from polymodal.train.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        model=args.model, out=Path(args.out), mode=args.mode, epochs=args.epochs, batch_size=args.batch_size,
        accum_steps=args.accum_steps, lr=args.lr, weight_decay=args.weight_decay, val_fraction=args.val_fraction,
        seed=args.seed, wise_alpha=args.wise_alpha, amp=not args.no_amp, device=args.device,
    )
    update, close = _step_bar()
    try:
        result = finetune(args.data, config, resume=args.resume, skip_bad=args.skip_bad, on_step=update)
    finally:
        close()
    for bad in result.skipped:
        print(f"polymodal: skipped: {bad.reason}", file=sys.stderr)
    if args.json:
        print_json(result.to_json())
        return 0
    print(f"{result.train_pairs} training pairs, {result.val_pairs} held out, {result.steps} steps ({args.mode})")
    keys = list(result.before)
    print_table([[k, f"{result.before[k]:.3f}", f"{result.after[k]:.3f}"] for k in keys], ["RECALL", "BEFORE", "AFTER"])
    print(f"\nsaved to {result.output}; use it as a model: --model {result.output}")
    return 0
