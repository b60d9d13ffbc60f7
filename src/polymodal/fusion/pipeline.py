"""From a data file to trained, evaluated and saved fusion models, and from a checkpoint to predictions.

The steps are the recipe h = f(g_1(x_1), ..., g_n(x_n)): read and check rows, embed each modality with
the frozen encoder g (cached), split, train the fusion f, evaluate on the held-out test rows, save.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.errors import CheckpointError, InputError
from polymodal.fusion.baselines import BASELINES, BaselineResult, fit_baseline
from polymodal.fusion.checkpoint import FusionCheckpoint, load_checkpoint, save_checkpoint
from polymodal.fusion.data import BadRow, Dataset, Row, check_classes, read_dataset
from polymodal.fusion.extract import extractor_for
from polymodal.fusion.features import CacheStats, FeatureCache, FeatureSet, encode_rows, row_modalities
from polymodal.fusion.metrics import Metrics, classification_metrics
from polymodal.fusion.modules import FusionConfig
from polymodal.fusion.trainer import EpochRecord, TrainConfig, evaluate, fit, predict_proba

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

STATE_DIR = "resume-state"
#: (done, total) while embedding rows
EncodeCallback = Callable[[int, int], None]
#: (fusion kind, epoch, epochs at most, record) after each epoch
FusionEpochCallback = Callable[[str, int, int, EpochRecord], None]


@dataclass(frozen=True)
class FusionOptions:
    """The architecture knobs of FusionConfig that do not come from the data."""

    hidden: int = 64
    combine: str = "concat"
    joint: str = "mlp"
    head_combine: str = "mean"
    tokens: int = 4
    heads: int = 4
    layers: int = 1
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainOptions:
    fusions: tuple[str, ...] = ("early",)  # more than one = a comparison
    target: str = "label"  # label field
    out: Path = Path("fusion-model")  # checkpoint dir; with several fusions, one subdir each + the plot
    val_fraction: float = 0.15  # used when the data gives no split field
    test_fraction: float = 0.15
    skip_bad: bool = False
    resume: bool = False
    baselines: bool | None = None  # fit BASELINES beside the fusions; None: when several fusions are compared
    fusion: FusionOptions = field(default_factory=FusionOptions)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class StrategyResult:
    kind: str
    test: Metrics
    val: Metrics
    best_epoch: int
    epochs_run: int
    history: list[EpochRecord]
    checkpoint: Path
    seconds: float = 0.0  # training time


@dataclass
class TrainReport:
    results: dict[str, StrategyResult]  # by fusion kind, in the order asked
    classes: list[str]
    modalities: tuple[str, ...]
    splits: dict[str, int]  # rows per split
    cache: CacheStats
    skipped: list[BadRow]
    encoder: str
    plot: Path | None = None
    baselines: dict[str, BaselineResult] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)  # what FEATURES gave: extractor, kind, dims
    notes: list[str] = field(default_factory=list)  # e.g. a modality with no tokens, fallen back to pooled

    def summary(self) -> dict[str, dict[str, float]]:
        """Test accuracy and macro-F1 per strategy, then per baseline: what ``train --json`` prints."""
        out = {k: r.test.summary() for k, r in self.results.items()}
        out.update({k: b.test.summary() for k, b in self.baselines.items()})
        return out


def canonical_spec(name: str) -> str:
    """The spec in the one form parse_spec gives (a directory resolved), for comparing models."""
    from polymodal.errors import ModelSpecError
    from polymodal.models import parse_spec

    try:
        return str(parse_spec(name))
    except ModelSpecError:
        return name


def split_rows(rows: list[Row], labels: np.ndarray, val_fraction: float, test_fraction: float,
               seed: int, source: Path) -> dict[str, np.ndarray]:
    """Given splits when the rows carry them, else a seeded split stratified by class."""
    given = [r.split for r in rows]
    if any(given):
        missing = next((r for r in rows if r.split is None), None)
        if missing is not None:
            raise InputError(f"line {missing.line} of {source} has no split while other rows do; give every "
                             "row a split (train, val, test) or none")
        out = {s: np.array([i for i, g in enumerate(given) if g == s], dtype=np.int64)
               for s in ("train", "val", "test")}
    else:
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise InputError("validation and test fractions must be in (0, 1) and sum to less than 1")
        rng = np.random.default_rng(seed)
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            n_val, n_test = round(len(idx) * val_fraction), round(len(idx) * test_fraction)
            parts["val"] += idx[:n_val].tolist()
            parts["test"] += idx[n_val : n_val + n_test].tolist()
            parts["train"] += idx[n_val + n_test :].tolist()
        out = {k: np.array(sorted(v), dtype=np.int64) for k, v in parts.items()}
    empty = [k for k, v in out.items() if len(v) == 0]
    if empty:
        raise InputError(f"{source}: the {', '.join(empty)} split would be empty ({len(rows)} rows); add rows, "
                         "change the fractions, or give a split field")
    return out


def embed_dataset(ds: Dataset, encoder: Encoder, *, skip_bad: bool, progress: EncodeCallback | None,
                  modalities: tuple[str, ...] | None = None,
                  tokens: bool = False) -> tuple[FeatureSet, CacheStats, list[Row]]:
    modalities = modalities or ds.modalities
    fs, stats, kept, bad = encode_rows(ds.rows, modalities, encoder, skip_bad=skip_bad, progress=progress,
                                       source=str(ds.source), tokens=tokens)
    ds.skipped.extend(bad)
    return fs, stats, [ds.rows[i] for i in kept]


def train_fusion(
    data: str | Path,
    options: TrainOptions,
    *,
    encoder: Encoder,
    on_encode: EncodeCallback | None = None,
    on_epoch: FusionEpochCallback | None = None,
) -> TrainReport:
    """Train (and with several fusions, compare) fusion models on a JSONL/CSV file; save checkpoints."""
    from polymodal.fusion.registry import fusions

    unknown = [k for k in options.fusions if k not in fusions()]
    if unknown or not options.fusions:
        raise InputError(f"unknown fusion {', '.join(unknown) or '(none)'}; choose from {', '.join(fusions())}")
    ds = read_dataset(data, target=options.target, supported=row_modalities(encoder), skip_bad=options.skip_bad)
    extractor = extractor_for(encoder)
    wants_tokens = any(fusions()[k].tokens for k in options.fusions)
    fs, stats, rows = embed_dataset(ds, encoder, skip_bad=options.skip_bad, progress=on_encode, tokens=wants_tokens)
    ds.rows = rows
    classes = check_classes(ds, options.target)
    fs.labels = np.array([classes.index(r.label) for r in rows if r.label is not None], dtype=np.int64)
    splits = split_rows(rows, fs.labels, options.val_fraction, options.test_fraction, options.train.seed, ds.source)
    train, val, test = (fs.subset(splits[s]) for s in ("train", "val", "test"))
    spec = canonical_spec(encoder.name)
    several = len(options.fusions) > 1
    outs = {k: Path(options.out) / k if several else Path(options.out) for k in options.fusions}
    if options.resume and not any((o / STATE_DIR).exists() for o in outs.values()):
        raise CheckpointError(f"nothing to resume in {options.out}: no interrupted run there (drop --resume)")
    results: dict[str, StrategyResult] = {}
    for kind in options.fusions:
        layouts = fs.token_layouts if fusions()[kind].tokens else ()
        config = FusionConfig(kind, fs.modalities, fs.dims, len(classes), **asdict(options.fusion),
                              token_layouts=layouts)
        feature_info = {"extractor": extractor.name, "kind": "tokens" if any(layouts) else "pooled",
                        "dims": list(fs.dims)}
        out = outs[kind]
        epoch_cb = None if on_epoch is None else (lambda e, n, r, k=kind: on_epoch(k, e, n, r))
        # With --compare, a strategy that had finished before the interruption has no state left; training
        # it again is deterministic and gives the checkpoint it already had.
        started = time.perf_counter()
        fitted = fit(config, train, val, options.train, classes=classes, on_epoch=epoch_cb,
                     state_dir=out / STATE_DIR, resume=options.resume and (out / STATE_DIR).exists())
        seconds = time.perf_counter() - started
        test_m = evaluate(fitted.model, test, classes, options.train.device)
        val_m = evaluate(fitted.model, val, classes, options.train.device)
        save_checkpoint(out, fitted.model, FusionCheckpoint(
            config, classes, options.target,
            {"spec": spec, "backend": encoder.info.backend, "dim": encoder.dim, "features": feature_info},
            {"test": test_m.to_dict(), "val": val_m.to_dict(), "best_epoch": fitted.best_epoch},
            [asdict(h) for h in fitted.history]))
        results[kind] = StrategyResult(kind, test_m, val_m, fitted.best_epoch, len(fitted.history), fitted.history,
                                       out, seconds)
    report = TrainReport(results, classes, fs.modalities, {k: len(v) for k, v in splits.items()}, stats,
                         ds.skipped, spec, features={"extractor": extractor.name, "describe": extractor.describe(),
                                                     "dims": list(fs.dims)}, notes=list(fs.notes))
    if several if options.baselines is None else options.baselines:
        report.baselines = {b: fit_baseline(b, train, val, test, classes, options.train.seed) for b in BASELINES}
    if several:
        from polymodal.fusion.plot import plot_curves

        curves = {k: r.history for k, r in results.items()}
        report.plot = plot_curves(curves, Path(options.out) / "validation_curves.png",
                                  title=f"{Path(data).name}: {', '.join(options.fusions)}",
                                  baselines={k: b.val.accuracy for k, b in report.baselines.items()})
    return report


@dataclass(frozen=True)
class Prediction:
    line: int
    id: str | None
    label: str
    probs: dict[str, float]
    true_label: str | None
    missing: tuple[str, ...]  # modalities this row lacked (masked)


@dataclass
class PredictReport:
    predictions: list[Prediction]
    metrics: Metrics | None  # when every row has a known label
    missing_modalities: tuple[str, ...]  # trained modalities absent from the whole file
    skipped: list[BadRow]
    checkpoint: Path

    def to_dict(self) -> dict[str, Any]:
        return {"predictions": [asdict(p) for p in self.predictions],
                "metrics": None if self.metrics is None else self.metrics.to_dict(),
                "missing_modalities": list(self.missing_modalities),
                "skipped": [asdict(b) for b in self.skipped]}


def load_for_predict(checkpoint: str | Path, model: str | None = None) -> str:
    """The encoder spec a checkpoint needs; a different one asked for is an error, not a silent mismatch."""
    from polymodal.fusion.checkpoint import CONFIG_FILE

    path = Path(checkpoint)
    _, ckpt = load_checkpoint(path)
    recorded = str(ckpt.encoder.get("spec", ""))
    if model is not None and canonical_spec(model) != recorded:
        raise CheckpointError(f"checkpoint {path} was trained on features of {recorded!r}, not {model!r}; "
                              f"predict with its own model (drop --model) — see {path / CONFIG_FILE}")
    return recorded


def predict_fusion(
    checkpoint: str | Path,
    data: str | Path,
    *,
    encoder: Encoder,
    skip_bad: bool = False,
    on_encode: EncodeCallback | None = None,
) -> PredictReport:
    path = Path(checkpoint)
    model, ckpt = load_checkpoint(path)
    if canonical_spec(encoder.name) != ckpt.encoder.get("spec") or encoder.dim != ckpt.encoder.get("dim"):
        raise CheckpointError(f"checkpoint {path} was trained on features of {ckpt.encoder.get('spec')!r} "
                              f"(dim {ckpt.encoder.get('dim')}), not {encoder.name!r} (dim {encoder.dim})")
    extractor = extractor_for(encoder)
    recorded = ckpt.features.get("extractor", "embedding")
    if extractor.name != recorded:
        raise CheckpointError(f"checkpoint {path} was trained on {recorded!r} features; {encoder.name!r} gives "
                              f"{extractor.name!r} features here — predict with the polymodal that trained it, "
                              "or train again")
    ds = read_dataset(data, target=ckpt.target, require_label=False, supported=row_modalities(encoder),
                      skip_bad=skip_bad)
    trained = ckpt.config.modalities
    extra = [m for m in ds.modalities if m not in trained]
    if extra:
        raise InputError(f"{ds.source} has {', '.join(extra)} but the model in {path} was trained on "
                         f"{', '.join(trained)} only; drop those fields or train with them")
    tokens = any(t is not None for t in ckpt.config.token_layouts)
    fs, _, rows = encode_for(ds, encoder, FeatureCache(encoder, extractor=extractor), skip_bad, on_encode, trained,
                             tokens)
    if tokens:
        for m, (want, got) in enumerate(zip(ckpt.config.token_layouts, fs.token_layouts)):
            if want is not None and want != got:
                raise CheckpointError(f"checkpoint {path} was trained on {trained[m]} tokens laid out as {want}; "
                                      f"{encoder.name!r} gives {got} here")
    probs = predict_proba(model, fs)
    classes = ckpt.classes
    preds = [Prediction(r.line, r.id, classes[int(p.argmax())], {c: float(x) for c, x in zip(classes, p)}, r.label,
                        tuple(m for j, m in enumerate(trained) if not fs.present[i, j]))
             for i, (r, p) in enumerate(zip(rows, probs))]
    metrics = None
    if rows and all(r.label in classes for r in rows):
        y = np.array([classes.index(str(r.label)) for r in rows])
        metrics = classification_metrics(y, probs.argmax(1), classes)
    missing = tuple(m for j, m in enumerate(trained) if not fs.present[:, j].any())
    return PredictReport(preds, metrics, missing, ds.skipped, path)


def encode_for(ds: Dataset, encoder: Encoder, cache: FeatureCache, skip_bad: bool,
               progress: EncodeCallback | None, modalities: tuple[str, ...],
               tokens: bool) -> tuple[FeatureSet, CacheStats, list[Row]]:
    fs, stats, kept, bad = encode_rows(ds.rows, modalities, encoder, skip_bad=skip_bad, progress=progress,
                                       cache=cache, source=str(ds.source), tokens=tokens)
    ds.skipped.extend(bad)
    return fs, stats, [ds.rows[i] for i in kept]
