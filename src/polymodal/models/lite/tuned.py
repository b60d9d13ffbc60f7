"""``lite-tuned``: the offline model with a fine-tuned image projection, saved as a plain directory.

``polymodal finetune --model lite`` learns a linear map from EfficientNet-Lite0's pooled features into the
MiniLM text space (see polymodal.train.adapters). The directory holds ``polymodal_lite.json`` and
``projection.safetensors`` and loads as a model spec (``load_model(DIR)``), so it can build a library and
be searched offline like ``lite`` itself.

WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models") interpolates zero-shot and
fine-tuned weights; lite's zero-shot image embedding (ConSE) is not a linear layer whose weights could be
mixed, so ``wise_alpha`` mixes the two embeddings instead — the paper's output-space ensemble:
``normalise((1 - a) * conse(x) + a * projection(x))``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from polymodal.models.lite.encoder import LiteEncoder

SCHEME = "lite-tuned"
FORMAT = "polymodal-lite-tuned"
VERSION = 1
CONFIG_FILE = "polymodal_lite.json"
WEIGHTS_FILE = "projection.safetensors"


def detect_dir(path: Path) -> bool:
    cfg = path / CONFIG_FILE
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def save_tuned(out: Path, weight: torch.Tensor, bias: torch.Tensor, logit_scale: float, wise_alpha: float) -> None:
    from safetensors.torch import save_file

    from polymodal.models.lite.encoder import VERSION as LITE_VERSION

    out.mkdir(parents=True, exist_ok=True)
    save_file({"weight": weight.detach().cpu().contiguous().clone(), "bias": bias.detach().cpu().contiguous().clone()},
              str(out / WEIGHTS_FILE))
    cfg = {"format": FORMAT, "version": VERSION, "base": "lite", "lite_version": LITE_VERSION,
           "feature_dim": int(weight.shape[1]), "dim": int(weight.shape[0]), "logit_scale": logit_scale,
           "wise_alpha": wise_alpha}
    (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=1), encoding="utf-8")


def _tuned_class() -> Any:
    from polymodal.models.lite.encoder import LiteEncoder

    class TunedLiteEncoder(LiteEncoder):
        backend = SCHEME

        def __init__(self, target: str, name: str, device: str | None = None, batch_size: int | None = None):
            import torch
            from safetensors.torch import load_file

            super().__init__(name, device=device, batch_size=batch_size)
            path = Path(target)
            try:
                cfg = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
                state = load_file(str(path / WEIGHTS_FILE))
            except (OSError, ValueError) as exc:
                raise ModelLoadError(f"cannot load fine-tuned lite model {path}: {exc}") from None
            if cfg.get("version", 0) > VERSION or cfg.get("dim") != self.text.dim:
                raise ModelLoadError(f"{path / CONFIG_FILE} is version {cfg.get('version')} / dim {cfg.get('dim')}; "
                                     f"this polymodal reads version {VERSION} with dim {self.text.dim}")
            self.projection = torch.nn.Linear(int(cfg["feature_dim"]), int(cfg["dim"]))
            self.projection.load_state_dict(state)
            self.projection.to(self.device).eval()
            self.alpha = float(cfg.get("wise_alpha", 1.0))
            self._scale = float(cfg["logit_scale"])
            self.config = cfg

        @property
        def logit_scale(self) -> float:
            return self._scale

        def build_networks(self) -> dict[str, Any]:
            from polymodal.models.base import Network

            nets = super().build_networks()
            tower = tuned_image_network(self.classifier, self.projection)
            nets["image"] = Network(tower, {"pixel_values": {0: "batch"}})
            return nets

        def postprocess_image(self, output: np.ndarray) -> np.ndarray:
            """[projected features | class logits] -> WiSE-FT's output-space mix of the tuned and ConSE embeddings."""
            from polymodal.models.base import normalise
            from polymodal.models.bundle import conse

            tuned = normalise(output[:, : self.dim])
            if self.alpha >= 1.0:
                return tuned
            mixed = conse(output[:, self.dim:], self.class_embeddings, self.top_t, self.temperature)
            return (1.0 - self.alpha) * normalise(mixed) + self.alpha * tuned

        def export_postprocess(self, folder: Path) -> dict[str, Any]:
            return {**super().export_postprocess(folder), "kind": SCHEME, "wise_alpha": self.alpha}

    return TunedLiteEncoder


def _tuned_image_class() -> Any:
    import torch

    class TunedImage(torch.nn.Module):
        """EfficientNet-Lite0 features -> [normalised projection | ImageNet logits], one network to export."""

        def __init__(self, classifier: Any, projection: Any) -> None:
            super().__init__()
            self.classifier = classifier
            self.projection = projection

        def forward(self, pixel_values: Any) -> Any:
            feats = self.classifier.features(pixel_values)
            tuned = torch.nn.functional.normalize(self.projection(feats), dim=-1)
            return torch.cat([tuned, self.classifier._fc(feats)], dim=-1)

    return TunedImage


def tuned_image_network(classifier: Any, projection: Any) -> Any:
    return _tuned_image_class()(classifier, projection)


def source_files(spec: Any) -> list[Path] | None:
    """The directory's own files and lite's: either changing gives a new export."""
    from polymodal.models.lite.files import source_files as lite_files

    path = Path(spec.target).expanduser()
    if not detect_dir(path):
        return None
    return [path / CONFIG_FILE, path / WEIGHTS_FILE, *lite_files()]


def load(spec: Any, device: str | None = None, batch_size: int | None = None, **options: Any) -> LiteEncoder:
    # Options meant for other backends' preprocessing (fast_preprocess, ...) have nothing to change here.
    return _tuned_class()(spec.target, str(spec.raw), device=device, batch_size=batch_size)


def _backend() -> Any:
    from polymodal.models.registry import Backend

    return Backend(SCHEME, "lite with a fine-tuned image projection (`polymodal finetune --model lite`)",
                   ("lite-tuned:/path/to/dir", "/path/to/dir"), load, True, detect_dir,
                   source_files=source_files)


BACKEND = _backend()
