"""A resumable training state on disk: weights (safetensors), optimizer and RNG (torch, weights-only) and JSON.

Written to a temporary sibling directory and swapped in, so a Ctrl-C or a crash while saving leaves the
previous state whole. Shared by fusion training and contrastive fine-tuning.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from polymodal.errors import CheckpointError

WEIGHTS = "state.safetensors"
OPTIMIZER = "optimizer.pt"
META = "state.json"


@dataclass
class TrainState:
    weights: dict[str, torch.Tensor]  # trainable module's state dict
    optimizer: dict[str, Any]  # optimizer.state_dict()
    rng: dict[str, Any]  # from rng_snapshot()
    meta: dict[str, Any]  # step, epoch, history, config: whatever the trainer needs to go on


def rng_snapshot() -> dict[str, Any]:
    snap: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        snap["cuda"] = torch.cuda.get_rng_state_all()
    return snap


def rng_restore(snap: dict[str, Any]) -> None:
    torch.set_rng_state(snap["torch"])
    if "cuda" in snap and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(snap["cuda"])


def save_state(path: Path, state: TrainState) -> None:
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # safetensors refuses shared or non-contiguous storage; a clone of each tensor has neither.
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.weights.items()}, str(tmp / WEIGHTS))
    torch.save({"optimizer": state.optimizer, "rng": state.rng}, tmp / OPTIMIZER)
    (tmp / META).write_text(json.dumps(state.meta, indent=1), encoding="utf-8")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def load_state(path: Path) -> TrainState:
    from safetensors.torch import load_file

    path = Path(path)
    missing = [f for f in (WEIGHTS, OPTIMIZER, META) if not (path / f).is_file()]
    if missing:
        raise CheckpointError(f"{path} is not a resumable training state: {', '.join(missing)} missing")
    try:
        weights = load_file(str(path / WEIGHTS))
        # weights_only: a state file is data; nothing in it may run code when loaded.
        extra = torch.load(path / OPTIMIZER, map_location="cpu", weights_only=True)
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read the training state in {path}: {exc}") from None
    return TrainState(weights, extra["optimizer"], extra["rng"], meta)
