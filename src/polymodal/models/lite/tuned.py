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

        def _embed_image_batch(self, batch: list[Any]) -> np.ndarray:
            import torch

            x = torch.from_numpy(np.stack([np.asarray(b, dtype=np.float32) for b in batch])).to(self.device)
            with torch.inference_mode():
                feats = self.classifier.features(x)
                tuned = torch.nn.functional.normalize(self.projection(feats), dim=-1).float().cpu().numpy()
                if self.alpha >= 1.0:
                    return tuned
                probs = torch.softmax(self.classifier._fc(feats) / self.temperature, dim=-1).float().cpu().numpy()
            top = np.argsort(-probs, axis=1)[:, : self.top_t]
            w = np.take_along_axis(probs, top, axis=1)
            conse = np.einsum("nt,ntd->nd", w / w.sum(1, keepdims=True), self.class_embeddings[top])
            conse /= np.maximum(np.linalg.norm(conse, axis=1, keepdims=True), 1e-12)
            return (1.0 - self.alpha) * conse + self.alpha * tuned

    return TunedLiteEncoder


def load(spec: Any, device: str | None = None, batch_size: int | None = None, **options: Any) -> LiteEncoder:
    # Options meant for other backends' preprocessing (fast_preprocess, ...) have nothing to change here.
    return _tuned_class()(spec.target, str(spec.raw), device=device, batch_size=batch_size)


def _backend() -> Any:
    from polymodal.models.registry import Backend

    return Backend(SCHEME, "lite with a fine-tuned image projection (`polymodal finetune --model lite`)",
                   ("lite-tuned:/path/to/dir", "/path/to/dir"), load, True, detect_dir)


BACKEND = _backend()
