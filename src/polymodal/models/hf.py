"""transformers backend: CLIPModel, SiglipModel and ChineseCLIPModel checkpoints from the hub or a directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import MissingDependencyError, ModelLoadError, TextTooLongError
from polymodal.models.base import Encoder

#: transformers ``model_type`` -> (model class name, how texts are padded)
SUPPORTED: dict[str, tuple[str, str]] = {
    "clip": ("CLIPModel", "longest"),
    # SigLIP was trained on texts padded to the full length; shorter padding changes its embeddings.
    "siglip": ("SiglipModel", "max_length"),
    "chinese_clip": ("ChineseCLIPModel", "longest"),
}

KNOWN = (
    ("openai/clip-vit-base-patch32", "OpenAI CLIP ViT-B/32 (the default)"),
    ("openai/clip-vit-base-patch16", "OpenAI CLIP ViT-B/16"),
    ("openai/clip-vit-large-patch14", "OpenAI CLIP ViT-L/14"),
    ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "LAION-2B ViT-B/32"),
    ("google/siglip-base-patch16-224", "SigLIP base 224"),
    ("OFA-Sys/chinese-clip-vit-base-patch16", "Chinese-CLIP ViT-B/16"),
)


def detect_dir(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") in SUPPORTED
    except (OSError, ValueError):
        return False


def is_cached(repo_id: str) -> bool:
    """Whether a hub model's config and weights are in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return False
    return any(
        isinstance(try_to_load_from_cache(repo_id, f), str) for f in ("model.safetensors", "pytorch_model.bin")
    )


def list_known() -> list:
    from polymodal.models.registry import ModelEntry

    return [ModelEntry(f"hf:{repo}", "hf", desc, is_cached(repo)) for repo, desc in KNOWN]


def quiet_transformers() -> None:
    """The library does not print: silence transformers' weight-loading bars and advisory logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class HFEncoder(Encoder):
    backend = "hf"

    def __init__(self, target: str, name: str, device: str | None = None, batch_size: int | None = None) -> None:
        super().__init__(name, device, batch_size)
        try:
            import transformers
            from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise MissingDependencyError("transformers", f"model {name}") from exc
        quiet_transformers()
        try:
            config = AutoConfig.from_pretrained(target)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load model {name}: {exc}. If it is a hub id, check the spelling and that it is cached "
                "or the hub is reachable; if it is a directory, check it holds config.json"
            ) from None
        if config.model_type not in SUPPORTED:
            raise ModelLoadError(
                f"model {name} is a {config.model_type!r} model; the hf backend loads {sorted(SUPPORTED)}"
            )
        class_name, self.padding = SUPPORTED[config.model_type]
        try:
            self.model = getattr(transformers, class_name).from_pretrained(target).eval().to(self.device)
            self.tokenizer = AutoTokenizer.from_pretrained(target)
            self.processor = AutoImageProcessor.from_pretrained(target)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load model {name}: {exc}") from None
        self.model_type = config.model_type
        text_cfg = config.text_config
        limit = getattr(self.tokenizer, "model_max_length", None)
        max_pos = int(getattr(text_cfg, "max_position_embeddings", 77))
        # Tokenizers without a limit report a huge sentinel; the position table is the real bound.
        self._context = min(limit, max_pos) if isinstance(limit, int) and limit < 100_000 else max_pos
        self._dim = int(getattr(config, "projection_dim", None) or text_cfg.hidden_size)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    @property
    def logit_bias(self) -> float | None:
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(bias.item())

    @property
    def context_length(self) -> int:
        return self._context

    def preprocess_image(self, image: Any) -> Any:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    @staticmethod
    def _features(out: Any) -> Any:
        # transformers 5 returns a model output whose pooler_output holds the projected features.
        return out if hasattr(out, "shape") else out.pooler_output

    def _embed_image_batch(self, batch: list[Any]) -> np.ndarray:
        import torch

        pixels = torch.stack(batch).to(self.device)
        with torch.inference_mode():
            feats = self._features(self.model.get_image_features(pixel_values=pixels))
        return feats.float().cpu().numpy()

    def tokenize(self, texts: list[str], truncate: bool) -> dict[str, Any]:
        if not truncate:
            for text, ids in zip(texts, self.tokenizer(texts, truncation=False)["input_ids"]):
                if len(ids) > self._context:
                    raise TextTooLongError(text, self._context, len(ids))
        return dict(
            self.tokenizer(
                texts, padding=self.padding, truncation=True, max_length=self._context, return_tensors="pt"
            )
        )

    def _embed_text_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        import torch

        keep = {"input_ids", "attention_mask"}
        if self.model_type == "siglip":
            keep = {"input_ids"}  # SigLIP attends to its padding, as in training (its tokenizer gives no mask)
        elif self.model_type == "chinese_clip":
            keep.add("token_type_ids")
        batch = {k: v.to(self.device) for k, v in self.tokenize(texts, truncate).items() if k in keep}
        with torch.inference_mode():
            feats = self._features(self.model.get_text_features(**batch))
        return feats.float().cpu().numpy()


def load(spec: Any, device: str | None = None, batch_size: int | None = None) -> HFEncoder:
    return HFEncoder(spec.target, str(spec.raw), device=device, batch_size=batch_size)
