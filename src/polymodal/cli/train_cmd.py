"""``polymodal train`` and ``predict``: fusion models on frozen encoder features, from a JSONL/CSV file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from polymodal.cli.common import add_model_options, print_json, print_table, progress_bar
from polymodal.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    # The defaults live in one place (fusion.pipeline / fusion.trainer, chosen by measurement: docs/fusion.md);
    # written out here only because importing them would import torch for `polymodal --help`.
    p = sub.add_parser(
        "train", help="train early/late/hybrid fusion classifiers on your data",
        description="Train a fusion classifier on rows with image/text fields and a label, on frozen encoder "
        "features (cached on disk). --compare trains several, fits two scikit-learn baselines "
        "(baseline_logreg, baseline_mlp) on the same pooled features, and plots the validation curves.")
    p.add_argument("--data", required=True, metavar="DATA", help="JSONL or CSV rows: image, text, label[, split, id]")
    p.add_argument("--fusion", default="early", help="early (default), late or hybrid")
    p.add_argument("--compare", metavar="KINDS", help="train several and compare, e.g. early,late,hybrid")
    p.add_argument("--target", default="label", metavar="FIELD", help="label field (default: label)")
    p.add_argument("--out", "-o", default="fusion-model", metavar="DIR",
                   help="checkpoint directory (with --compare: one subdirectory per fusion + the plot)")
    p.add_argument("--epochs", type=int, default=200, help="at most this many epochs (default 200)")
    p.add_argument("--patience", type=int, default=40, help="early stopping: epochs without improvement (40)")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate (AdamW, default 2e-3)")
    p.add_argument("--train-batch", type=int, default=64, metavar="N", help="rows per training step (64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and shuffling (0)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="validation share without a split field")
    p.add_argument("--test-fraction", type=float, default=0.15, help="test share without a split field")
    p.add_argument("--hidden", type=int, default=64, help="shared width of the fusion module (64)")
    p.add_argument("--combine", default="concat", help="early fusion join: concat, product or gated")
    p.add_argument("--joint", default="mlp", help="early fusion joint model: mlp or transformer")
    p.add_argument("--head-combine", default="mean", help="late/hybrid heads: mean, weighted or poe")
    p.add_argument("--tokens", type=int, default=4, help="tokens per modality for attention (hybrid, transformer)")
    p.add_argument("--layers", type=int, default=1, help="attention layers (hybrid, early transformer)")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--modality-dropout", type=float, default=0.0,
                   help="chance of hiding a modality from a training row, to prepare for missing ones")
    p.add_argument("--skip-bad", action="store_true", help="report bad rows and go on without them")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--json", action="store_true", help='print {"FUSION": {"accuracy": ..., "macro_f1": ...}}')
    add_model_options(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser("predict", help="predict labels with a trained fusion checkpoint",
                       description="Predict labels for rows of a JSONL/CSV file with a `polymodal train` checkpoint.")
    p.add_argument("data", metavar="DATA", help="JSONL or CSV rows with the modalities the model was trained on")
    p.add_argument("--checkpoint", "-c", required=True, metavar="DIR", help="directory written by `polymodal train`")
    p.add_argument("--skip-bad", action="store_true", help="report bad rows and go on without them")
    p.add_argument("--json", action="store_true", help='print {"predictions": [...], "metrics": ...}')
    add_model_options(p)
    p.set_defaults(func=run_predict)


def _note(msg: str) -> None:
    print(f"polymodal: {msg}", file=sys.stderr)


def _epoch_bars() -> Any:
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def update(kind: str, epoch: int, total: int, record: Any) -> None:
        if kind not in bars:
            bars[kind] = tqdm(total=total, desc=f"{kind} fusion", unit="epoch", file=sys.stderr, disable=None,
                              leave=False)
        bar = bars[kind]
        bar.update(epoch - bar.n)
        bar.set_postfix(val_loss=f"{record.val_loss:.3f}", val_acc=f"{record.val_accuracy:.3f}")

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return update, close


def run_train(args: argparse.Namespace) -> int:
    from polymodal.cli.common import load_encoder
    from polymodal.fusion import FusionOptions, TrainConfig, TrainOptions, train_fusion
    from polymodal.models.base import resolve_device

    kinds = tuple(k.strip() for k in (args.compare or args.fusion).split(",") if k.strip())
    if not kinds:
        raise InputError("--compare needs fusion names, e.g. --compare early,late,hybrid")
    encoder = load_encoder(args)
    options = TrainOptions(
        fusions=kinds, target=args.target, out=Path(args.out), val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, skip_bad=args.skip_bad, resume=args.resume,
        fusion=FusionOptions(hidden=args.hidden, combine=args.combine, joint=args.joint,
                             head_combine=args.head_combine, tokens=args.tokens, layers=args.layers,
                             dropout=args.dropout),
        train=TrainConfig(epochs=args.epochs, batch_size=args.train_batch, lr=args.lr, patience=args.patience,
                          seed=args.seed, modality_dropout=args.modality_dropout,
                          device=resolve_device(args.device)),
    )
    on_epoch, close = _epoch_bars()
    try:
        report = train_fusion(args.data, options, encoder=encoder, on_encode=progress_bar("embedding", "input"),
                              on_epoch=on_epoch)
    finally:
        close()
    for bad in report.skipped:
        _note(f"skipped: {bad.reason}")
    for note in report.notes:
        _note(note)
    if args.json:
        print_json(report.summary())
        return 0
    s = report.splits
    print(f"{sum(s.values())} rows ({s['train']} train, {s['val']} val, {s['test']} test), "
          f"modalities: {', '.join(report.modalities)}, classes: {len(report.classes)}, encoder: {report.encoder}")
    print(f"features: {report.cache.encoded} encoded, {report.cache.cached} from the cache "
          f"({report.features.get('describe', '')})")
    for kind, r in report.results.items():
        print(f"\n{kind} fusion: test accuracy {r.test.accuracy:.3f}, macro-F1 {r.test.macro_f1:.3f} "
              f"(best epoch {r.best_epoch} of {r.epochs_run}); saved to {r.checkpoint}")
        print_table([[c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support)]
                     for c in r.test.per_class], ["CLASS", "PRECISION", "RECALL", "F1", "SUPPORT"])
    if len(report.results) > 1 or report.baselines:
        print()
        table = [[k, f"{r.test.accuracy:.3f}", f"{r.test.macro_f1:.3f}", f"{r.val.accuracy:.3f}",
                  str(r.best_epoch)] for k, r in report.results.items()]
        table += [[k, f"{b.test.accuracy:.3f}", f"{b.test.macro_f1:.3f}", f"{b.val.accuracy:.3f}", "-"]
                  for k, b in report.baselines.items()]
        print_table(table, ["FUSION", "TEST_ACC", "TEST_MACRO_F1", "VAL_ACC", "BEST_EPOCH"])
    if len(report.results) > 1:
        best = max(report.results.values(), key=lambda r: (r.val.macro_f1, r.val.accuracy))
        print(f"\nbest on validation: {best.kind}; validation curves: {report.plot}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from polymodal.fusion.pipeline import load_for_predict, predict_fusion
    from polymodal.models import load_model

    spec = load_for_predict(args.checkpoint, args.model)
    encoder = load_model(spec, device=args.device, batch_size=args.batch_size)
    report = predict_fusion(args.checkpoint, args.data, encoder=encoder, skip_bad=args.skip_bad,
                            on_encode=progress_bar("embedding", "input"))
    for bad in report.skipped:
        _note(f"skipped: {bad.reason}")
    if report.missing_modalities:
        _note(f"{args.data} has no {', '.join(report.missing_modalities)}; predicting from the other "
              "modalities (masked)")
    if args.json:
        print_json(report.to_dict())
        return 0
    rows = [[str(p.line), p.id or "", p.label, f"{p.probs[p.label]:.3f}", p.true_label or "",
             ",".join(p.missing)] for p in report.predictions]
    print_table(rows, ["LINE", "ID", "PREDICTED", "PROB", "TRUE", "MISSING"])
    if report.metrics is not None:
        print(f"\naccuracy {report.metrics.accuracy:.3f}, macro-F1 {report.metrics.macro_f1:.3f} "
              f"({report.metrics.n} rows)")
    return 0
