"""A trained fusion model on disk: ``model.safetensors`` + ``fusion.json``.

The JSON records how the model was made — fusion config, classes, label field, and the encoder whose
features it was trained on (spec, backend, width) — so predicting with another encoder's features, or with
modalities it never saw, is refused instead of silently producing nonsense (house habit 4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.errors import CheckpointError
from polymodal.fusion.modules import FusionConfig, FusionModel

FORMAT = "polymodal-fusion"
#: 2: pooled inputs standardised inside the model, features recorded, hybrid fusion over tokens
VERSION = 2
CONFIG_FILE = "fusion.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class FusionCheckpoint:
    config: FusionConfig
    classes: list[str]
    target: str  # label field of the training data
    encoder: dict[str, Any]  # {"spec", "backend", "dim"} of the frozen encoder
    metrics: dict[str, Any] = field(default_factory=dict)  # test/validation metrics at save time
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch validation curve

    @property
    def features(self) -> dict[str, Any]:
        """{"extractor", "kind": "pooled" | "tokens", "dims"}; a version-1 checkpoint had plain embeddings."""
        return dict(self.encoder.get("features") or {"extractor": "embedding", "kind": "pooled"})

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "fusion": self.config.to_dict(), "classes": self.classes,
                "target": self.target, "encoder": self.encoder, "metrics": self.metrics, "history": self.history}


def is_checkpoint(path: Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def save_checkpoint(path: Path, model: FusionModel, ckpt: FusionCheckpoint) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path / WEIGHTS_FILE))
    (path / CONFIG_FILE).write_text(json.dumps(ckpt.to_json(), indent=1), encoding="utf-8")
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[FusionModel, FusionCheckpoint]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from polymodal.fusion.registry import build_fusion

    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        what = "does not exist" if not path.exists() else f"holds no {CONFIG_FILE}"
        raise CheckpointError(f"checkpoint {path} {what}; give a directory written by `polymodal train`")
    try:
        data = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path / CONFIG_FILE}: {exc}") from None
    if data.get("format") != FORMAT:
        raise CheckpointError(f"{path / CONFIG_FILE} is not a polymodal fusion checkpoint")
    if int(data.get("version", 0)) > VERSION:
        raise CheckpointError(f"checkpoint {path} is format version {data['version']}; this polymodal reads "
                              f"up to {VERSION}: upgrade polymodal")
    try:
        config = FusionConfig.from_dict(data["fusion"])
        ckpt = FusionCheckpoint(config, list(data["classes"]), str(data["target"]), dict(data["encoder"]),
                                dict(data.get("metrics", {})), list(data.get("history", [])))
        model = build_fusion(config)
        missing, unexpected = model.load_state_dict(load_file(str(path / WEIGHTS_FILE)), strict=False)
        # Version 1 had no input statistics: its inputs were used as they came, which the defaults reproduce.
        extra = [k for k in missing if not k.startswith(("in_mean", "in_std"))] + list(unexpected)
        if extra or (missing and int(data.get("version", 1)) >= 2):
            raise RuntimeError(f"weights do not match the {config.kind} fusion: {', '.join((extra or missing)[:4])}")
    except (KeyError, TypeError, ValueError, RuntimeError, OSError, SafetensorError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged or incomplete: {exc}") from None
    return model.to(device).eval(), ckpt
