"""Contrastive fine-tuning of a dual encoder on the user's image–text pairs (pretrain -> finetune).

One loop for every backend (see adapters): symmetric InfoNCE with a clamped learnable temperature, AdamW
with a warm-up then cosine schedule, gradient accumulation, mixed precision on CUDA, a resumable state
written each epoch and on Ctrl-C, Recall@1/5/10 on held-out pairs before and after, and WiSE-FT
interpolation of the result with the pretrained weights. The output directory loads as a model spec.

Gradient accumulation here averages gradients of micro-batches, each with its own in-batch negatives; it
makes the update of a big batch affordable but not its negatives (that would need GradCache, Gao et al.
2021), so prefer the largest --batch-size that fits and accumulate beyond it.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.errors import CheckpointError, InputError, TrainingError, TrainingInterrupted
from polymodal.train.adapters import MODES, Adapter, adapter_for
from polymodal.train.objective import clamp_logit_scale, clip_loss
from polymodal.train.pairs import Pair, read_pairs
from polymodal.train.records import BadRow
from polymodal.train.retrieval import recall_at_k
from polymodal.train.state import TrainState, load_state, rng_restore, rng_snapshot, save_state

STATE_DIR = "resume-state"
INFO_FILE = "polymodal_finetune.json"
#: learning rates that suit each mode when none is given (full and LiT move pretrained towers: gently)
DEFAULT_LR = {"projections": 1e-3, "lit": 1e-5, "full": 1e-5}
#: (optimizer steps done, steps in all, loss of the last step)
StepCallback = Callable[[int, int, float], None]


@dataclass(frozen=True)
class FinetuneConfig:
    model: str  # spec of the pretrained model
    out: Path  # the fine-tuned model directory
    mode: str = "projections"  # projections | lit | full
    epochs: int = 5
    batch_size: int = 32  # pairs per micro-batch: the in-batch negatives
    accum_steps: int = 1  # micro-batches per optimizer step
    lr: float | None = None  # None: DEFAULT_LR of the mode
    weight_decay: float = 0.1  # on matrices only, not on gains, biases or the temperature (as CLIP)
    warmup: float = 0.1  # share of the steps spent warming the learning rate up
    val_fraction: float = 0.2  # held-out share when the pairs give no split
    seed: int = 0
    wise_alpha: float = 1.0  # 1 = fine-tuned weights; 0 = pretrained; between = WiSE-FT
    amp: bool = True  # mixed precision, on CUDA only
    device: str | None = None

    def check(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"--mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.epochs < 1 or self.batch_size < 2 or self.accum_steps < 1:
            raise InputError("need epochs >= 1, batch size >= 2 (contrastive needs negatives), accum steps >= 1")
        if not 0.0 <= self.wise_alpha <= 1.0:
            raise InputError(f"--wise-alpha must be in [0, 1], got {self.wise_alpha}")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"the held-out fraction must be in (0, 1), got {self.val_fraction}")

    def resume_key(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        d = asdict(self)
        d.pop("device")
        d["out"] = str(self.out)
        return d


@dataclass
class FinetuneResult:
    before: dict[str, float]  # Recall@1/5/10 both ways on the held-out pairs, pretrained model
    after: dict[str, float]  # the same for the saved output, loaded back through load_model
    output: Path
    steps: int
    losses: list[float]  # mean training loss per epoch
    train_pairs: int
    val_pairs: int
    skipped: list[BadRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "output": str(self.output)}


def split_pairs(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    if any(p.split for p in pairs):
        train = [p for p in pairs if p.split != "val"]
        val = [p for p in pairs if p.split == "val"]
    else:
        order = np.random.default_rng(seed).permutation(len(pairs))
        n_val = max(1, round(len(pairs) * val_fraction))
        val = [pairs[i] for i in sorted(order[:n_val])]
        train = [pairs[i] for i in sorted(order[n_val:])]
    if len(train) < 2 or len(val) < 2:
        raise InputError(f"need at least 2 training and 2 held-out pairs, got {len(train)} and {len(val)}")
    return train, val


def _evaluate(encoder: Any, val: list[Pair]) -> dict[str, float]:
    img = encoder.encode_images([p.image for p in val])
    txt = encoder.encode_texts([p.text for p in val], truncate=True)
    return recall_at_k(img, txt)


def _lr_at(step: int, total: int, base: float, warmup: float) -> float:
    warm = max(1, int(total * warmup))
    if step < warm:
        return base * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def _param_groups(params: list[torch.nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _wise(adapter: Adapter, theta0: dict[str, torch.Tensor], alpha: float) -> None:
    """WiSE-FT: theta = (1 - alpha) * theta_pretrained + alpha * theta_finetuned, for every float tensor."""
    state = adapter.module.state_dict()
    with torch.no_grad():
        for k, v in state.items():
            if k in theta0 and v.is_floating_point():
                v.copy_((1.0 - alpha) * theta0[k].to(v.device, v.dtype) + alpha * v)


def finetune(
    data: str | Path,
    config: FinetuneConfig,
    *,
    resume: bool = False,
    skip_bad: bool = False,
    on_step: StepCallback | None = None,
) -> FinetuneResult:
    """Fine-tune ``config.model`` on the pairs in ``data`` and save it to ``config.out``.

    Ctrl-C (KeyboardInterrupt) during training writes ``out/resume-state`` and raises TrainingInterrupted;
    calling again with ``resume=True`` continues from the last completed step and ends with the same
    weights as an uninterrupted run.
    """
    from polymodal.models import load_model

    config.check()
    pairset = read_pairs(data, skip_bad=skip_bad)
    train, val = split_pairs(pairset.pairs, config.val_fraction, config.seed)
    out = Path(config.out)
    state_dir = out / STATE_DIR
    if resume and not state_dir.exists():
        raise CheckpointError(f"nothing to resume in {out}: no {STATE_DIR} there (start without --resume)")
    if out.exists() and not resume and any(out.iterdir()):
        if (out / STATE_DIR).exists():
            raise InputError(f"{out} holds an interrupted run; continue it with --resume, or choose another --out")
        if not (out / INFO_FILE).is_file():
            raise InputError(f"output directory {out} exists and is not a polymodal fine-tune; choose another --out")
    encoder = load_model(config.model, device=config.device, runtime="torch")  # training needs the torch modules
    adapter = adapter_for(encoder)
    adapter.check_mode(config.mode)
    before = _evaluate(encoder, val)

    torch.manual_seed(config.seed)
    params = adapter.trainable(config.mode)
    theta0 = ({k: v.detach().cpu().clone() for k, v in adapter.module.state_dict().items()}
              if config.wise_alpha < 1.0 else {})
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.mode]
    opt = torch.optim.AdamW(_param_groups(params, config.weight_decay), lr=lr)
    device = encoder.device
    use_amp = config.amp and device.startswith("cuda")
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    per_step = config.batch_size * config.accum_steps
    steps_per_epoch = max(1, math.ceil(len(train) / per_step))
    total = steps_per_epoch * config.epochs
    step, losses, epoch_loss = 0, [], []
    if resume:
        st = load_state(state_dir)
        if st.meta.get("config") != config.resume_key() or st.meta.get("base") != encoder.name:
            raise CheckpointError(f"the interrupted run in {out} was made with another model or other settings "
                                  f"({st.meta.get('base')!r}); resume with the same ones or start afresh")
        adapter.module.load_state_dict({k: v.to(device) for k, v in st.weights.items()})
        opt.load_state_dict(st.optimizer)
        rng_restore(st.rng)
        step, losses, epoch_loss = int(st.meta["step"]), list(st.meta["losses"]), list(st.meta["epoch_loss"])
        if "scaler" in st.meta:
            scaler.load_state_dict(st.meta["scaler"])

    def snapshot() -> TrainState:
        meta = {"step": step, "losses": list(losses), "epoch_loss": list(epoch_loss), "config": config.resume_key(),
                "base": encoder.name, "scaler": scaler.state_dict()}
        return TrainState(adapter.module.state_dict(), opt.state_dict(), rng_snapshot(), meta)

    def autocast() -> Any:
        return torch.autocast("cuda", dtype=amp_dtype) if use_amp else contextlib.nullcontext()

    saved = snapshot()  # the state as of the last completed step; what Ctrl-C writes
    adapter.train(True)
    try:
        while step < total:
            epoch, within = divmod(step, steps_per_epoch)
            order = np.random.default_rng([config.seed, epoch]).permutation(len(train))
            chunk = order[within * per_step : (within + 1) * per_step]
            opt.zero_grad(set_to_none=True)
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total, lr, config.warmup)
            micro = [chunk[i : i + config.batch_size] for i in range(0, len(chunk), config.batch_size)]
            micro = [m for m in micro if len(m) >= 2] or [chunk]
            step_loss = 0.0
            for idx in micro:
                batch = [train[i] for i in idx]
                images, texts = adapter.images([p.image for p in batch]), adapter.texts([p.text for p in batch])
                with autocast():
                    loss = clip_loss(adapter.embed_images(images), adapter.embed_texts(texts), adapter.log_scale)
                if not torch.isfinite(loss):
                    raise TrainingError(f"the loss became {loss.item()} at step {step}; try a lower --lr")
                scaler.scale(loss / len(micro)).backward()
                step_loss += float(loss.detach()) / len(micro)
            scaler.step(opt)
            scaler.update()
            clamp_logit_scale(adapter.log_scale)
            step += 1
            epoch_loss.append(step_loss)
            if step % steps_per_epoch == 0 or step == total:
                losses.append(float(np.mean(epoch_loss)))
                epoch_loss = []
                save_state(state_dir, snapshot())
            saved = snapshot()
            if on_step is not None:
                on_step(step, total, step_loss)
    except KeyboardInterrupt:
        save_state(state_dir, saved)
        raise TrainingInterrupted(str(state_dir), int(saved.meta["step"])) from None
    adapter.train(False)
    if config.wise_alpha < 1.0 and theta0:
        _wise(adapter, theta0, config.wise_alpha)
    out.mkdir(parents=True, exist_ok=True)
    adapter.save(out, config.wise_alpha)
    info = {"base_model": encoder.name, "backend": encoder.backend, "mode": config.mode, "steps": step,
            "train_pairs": len(train), "val_pairs": len(val), "wise_alpha": config.wise_alpha,
            "before": before, "losses": losses, "config": config.resume_key()}
    after = _evaluate(load_model(str(out), device=config.device), val)
    info["after"] = after
    (out / INFO_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    shutil.rmtree(state_dir, ignore_errors=True)
    return FinetuneResult(before, after, out, step, losses, len(train), len(val), pairset.skipped)
