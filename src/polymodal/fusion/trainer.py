"""Training a fusion module on cached features: seeded, early-stopped, resumable after Ctrl-C."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from polymodal.errors import CheckpointError, TrainingError, TrainingInterrupted
from polymodal.fusion.features import FeatureSet
from polymodal.fusion.metrics import Metrics, classification_metrics
from polymodal.fusion.modules import FusionConfig, FusionModel, Tokens
from polymodal.fusion.registry import build_fusion
from polymodal.train.state import TrainState, load_state, rng_restore, rng_snapshot, save_state

#: called after each epoch with (epoch, epochs at most, the epoch's record)
EpochCallback = Callable[[int, int, "EpochRecord"], None]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200  # at most; early stopping usually ends sooner
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    # epochs without a better validation loss before stopping: hybrid fusion on the relation task sits at chance
    # for ~20 epochs before it finds where the shapes are (measured, issue 16), so 20 stopped it too early
    patience: int = 40
    seed: int = 0
    aux_weight: float = 1.0  # weight of the per-modality head losses (late, hybrid), so each head stands alone
    modality_dropout: float = 0.0  # chance of hiding a modality from a training row (never the last one)
    device: str = "cpu"


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    val_macro_f1: float


@dataclass
class FitResult:
    model: FusionModel  # with the weights of the best validation epoch
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool


def _resume_key(cfg: TrainConfig) -> dict[str, object]:
    """Settings a resumed run must share with the interrupted one (the device may differ)."""
    key = asdict(cfg)
    key.pop("device")
    return key


def _tensors(fs: FeatureSet, device: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    return [torch.from_numpy(f).to(device) for f in fs.features], torch.from_numpy(fs.present).to(device)


def _tokens(fs: FeatureSet, idx: np.ndarray, device: str) -> list[Tokens | None] | None:
    """The tokens of rows ``idx``, read from the (memory-mapped) set one batch at a time."""
    if fs.tokens is None:
        return None
    out: list[Tokens | None] = []
    for t in fs.tokens:
        if t is None:
            out.append(None)
            continue
        vals, valid = t.batch(idx)
        out.append((torch.from_numpy(vals).to(device), torch.from_numpy(valid).to(device)))
    return out


def input_stats(fs: FeatureSet) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-dimension mean and spread of each modality's pooled features over the rows that have it."""
    means, stds = [], []
    for j, f in enumerate(fs.features):
        rows = f[fs.present[:, j]]
        if len(rows) == 0:
            means.append(torch.zeros(f.shape[1]))
            stds.append(torch.ones(f.shape[1]))
            continue
        mu = rows.mean(0, dtype=np.float64)
        # The floor keeps a constant dimension (a dead ReLU) from being blown up into noise.
        sd = np.sqrt(rows.var(0, dtype=np.float64) + 1e-4)
        means.append(torch.from_numpy(mu.astype(np.float32)))
        stds.append(torch.from_numpy(sd.astype(np.float32)))
    return means, stds


def _loss(out_logits: torch.Tensor, heads: torch.Tensor | None, present: torch.Tensor, y: torch.Tensor,
          aux_weight: float) -> torch.Tensor:
    loss = F.cross_entropy(out_logits, y)
    if heads is not None and aux_weight > 0:
        b, m, c = heads.shape
        per = F.cross_entropy(heads.reshape(b * m, c), y.repeat_interleave(m), reduction="none").view(b, m)
        mask = present.to(per.dtype)
        loss = loss + aux_weight * (per * mask).sum() / mask.sum().clamp(min=1.0)
    return loss


@torch.no_grad()
def predict_proba(model: FusionModel, fs: FeatureSet, device: str = "cpu", batch_size: int = 512) -> np.ndarray:
    """Class probabilities (N, C); missing modalities are masked as ``fs.present`` says."""
    model.eval()
    feats, present = _tensors(fs, device)
    out = []
    for s in range(0, len(fs), batch_size):
        idx = np.arange(s, min(s + batch_size, len(fs)))
        logits = model([f[s : s + batch_size] for f in feats], present[s : s + batch_size],
                       _tokens(fs, idx, device)).logits
        out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_classes), np.float32)


def evaluate(model: FusionModel, fs: FeatureSet, classes: list[str], device: str = "cpu") -> Metrics:
    if fs.labels is None:
        raise TrainingError("cannot compute metrics for rows without labels")
    return classification_metrics(fs.labels, predict_proba(model, fs, device).argmax(1), classes)


def _val_loss(model: FusionModel, fs: FeatureSet, device: str) -> float:
    assert fs.labels is not None
    p = predict_proba(model, fs, device)
    return float(-np.log(np.clip(p[np.arange(len(fs)), fs.labels], 1e-12, None)).mean())


def fit(
    config: FusionConfig,
    train: FeatureSet,
    val: FeatureSet,
    cfg: TrainConfig,
    *,
    classes: list[str],
    on_epoch: EpochCallback | None = None,
    state_dir: Path | None = None,
    resume: bool = False,
) -> FitResult:
    """Train a fusion module from scratch (or from ``state_dir`` when ``resume``), keep the best epoch.

    The shuffling of epoch e comes from a generator seeded with (seed, e) and the torch RNG is saved with
    the state, so a run resumed after Ctrl-C continues exactly as the uninterrupted run would have.
    """
    if train.labels is None or val.labels is None:
        raise TrainingError("training and validation rows need labels")
    if len(train) == 0 or len(val) == 0:
        raise TrainingError(f"need training and validation rows, got {len(train)} and {len(val)}")
    device = cfg.device
    torch.manual_seed(cfg.seed)
    model = build_fusion(config).to(device)
    model.set_input_stats(*input_stats(train))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Halve the step when validation stalls for half the patience: late enough not to starve the initial plateau
    # hybrid fusion has to cross, early enough to settle before stopping.
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, cfg.patience // 2))
    history: list[EpochRecord] = []
    best = {"loss": math.inf, "epoch": 0, "bad": 0}
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start = 1
    if resume:
        if state_dir is None or not state_dir.exists():
            raise CheckpointError(f"nothing to resume: no training state in {state_dir}")
        st = load_state(state_dir)
        if st.meta.get("fusion") != config.to_dict() or st.meta.get("train") != _resume_key(cfg):
            raise CheckpointError(f"the training state in {state_dir} was made with other settings; "
                                  "resume with the same data and options, or start afresh without --resume")
        model.load_state_dict({k[5:]: v for k, v in st.weights.items() if k.startswith("live.")})
        best_state = {k[5:]: v for k, v in st.weights.items() if k.startswith("best.")}
        opt.load_state_dict(st.optimizer)
        if "scheduler" in st.meta:
            sched.load_state_dict(st.meta["scheduler"])
        rng_restore(st.rng)
        history = [EpochRecord(**h) for h in st.meta["history"]]
        best = dict(st.meta["best"])
        start = int(st.meta["epoch"]) + 1
    feats, present = _tensors(train, device)
    labels = torch.from_numpy(train.labels).to(device)
    stopped = False
    epoch = start - 1
    try:
        for epoch in range(start, cfg.epochs + 1):
            model.train()
            order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train))
            total, seen = 0.0, 0
            for s in range(0, len(order), cfg.batch_size):
                rows = order[s : s + cfg.batch_size]
                idx = torch.from_numpy(rows).to(device)
                mask = present[idx]
                if cfg.modality_dropout > 0:
                    drop = torch.rand(mask.shape, device=device) < cfg.modality_dropout
                    kept = mask & ~drop
                    mask = torch.where(kept.any(1, keepdim=True), kept, mask)  # never hide every modality
                xs = [f[idx] * mask[:, j : j + 1].to(f.dtype) for j, f in enumerate(feats)]
                out = model(xs, mask, _tokens(train, rows, device))
                loss = _loss(out.logits, out.head_logits, mask, labels[idx], cfg.aux_weight)
                if not torch.isfinite(loss):
                    raise TrainingError(f"the loss became {loss.item()} at epoch {epoch}; try a lower --lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            metrics = evaluate(model, val, classes, device)
            record = EpochRecord(epoch, total / seen, _val_loss(model, val, device), metrics.accuracy,
                                 metrics.macro_f1)
            history.append(record)
            sched.step(record.val_loss)
            if record.val_loss < best["loss"] - 1e-6:
                best = {"loss": record.val_loss, "epoch": epoch, "bad": 0}
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                best["bad"] += 1
            if state_dir is not None:
                weights = {f"live.{k}": v for k, v in model.state_dict().items()}
                weights.update({f"best.{k}": v for k, v in best_state.items()})
                save_state(state_dir, TrainState(weights, opt.state_dict(), rng_snapshot(), {
                    "epoch": epoch, "history": [asdict(h) for h in history], "best": best,
                    "fusion": config.to_dict(), "train": _resume_key(cfg),
                    "scheduler": sched.state_dict()}))
            if on_epoch is not None:
                on_epoch(epoch, cfg.epochs, record)
            if best["bad"] >= cfg.patience:
                stopped = True
                break
    except KeyboardInterrupt:
        if state_dir is None or not state_dir.exists():
            raise
        raise TrainingInterrupted(str(state_dir), epoch) from None
    model.load_state_dict(best_state)
    model.eval()
    if state_dir is not None:
        shutil.rmtree(state_dir, ignore_errors=True)  # finished: the checkpoint is the product now
    return FitResult(model, history, int(best["epoch"]), stopped)
