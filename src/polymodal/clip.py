"""A drop-in for OpenAI's ``clip`` package: change ``import clip`` to ``from polymodal import clip``.

    model, preprocess = clip.load("ViT-B/32")
    image = preprocess(Image.open("image.jpg")).unsqueeze(0)
    text = clip.tokenize(["a photo of a cat"])
    logits_per_image, logits_per_text = model(image, text)

``load`` takes OpenAI's model names (served from the transformers or open_clip copies of the same weights),
a local directory holding a transformers CLIP or an open_clip model, or any polymodal ``hf:``/``open_clip:``
spec of a CLIP model. Outputs follow OpenAI's conventions: unnormalised features from ``encode_*``, logits
scaled by ``logit_scale.exp()`` from ``forward``, token ids as int32 from ``tokenize``. OpenAI's own ``.pt``
files are TorchScript/pickle archives and are refused: polymodal does not run pickled code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polymodal.errors import ModelLoadError, ModelSpecError, TextTooLongError
from polymodal.models.preprocess import ImageTransform

#: OpenAI's names -> the polymodal spec holding the same weights
_MODELS: dict[str, str] = {
    "RN50": "open_clip:RN50/openai",
    "RN101": "open_clip:RN101/openai",
    "RN50x4": "open_clip:RN50x4/openai",
    "RN50x16": "open_clip:RN50x16/openai",
    "RN50x64": "open_clip:RN50x64/openai",
    "ViT-B/32": "hf:openai/clip-vit-base-patch32",
    "ViT-B/16": "hf:openai/clip-vit-base-patch16",
    "ViT-L/14": "hf:openai/clip-vit-large-patch14",
    "ViT-L/14@336px": "hf:openai/clip-vit-large-patch14-336",
}


def available_models() -> list[str]:
    """The names OpenAI's ``clip.available_models()`` returns."""
    return list(_MODELS)


class CLIP(nn.Module):
    """OpenAI's CLIP calling convention over a transformers or open_clip model."""

    input_resolution: int
    context_length: int = 77

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def logit_scale(self) -> nn.Parameter:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image_features = self.encode_image(image)
        text_features = self.encode_text(text)
        image_features = image_features / image_features.norm(dim=1, keepdim=True)
        text_features = text_features / text_features.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()


class _HFCLIP(CLIP):
    def __init__(self, model: Any, resolution: int) -> None:
        super().__init__()
        self.model = model
        self.input_resolution = resolution
        self.visual = model.vision_model
        self.visual.input_resolution = resolution

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    @staticmethod
    def _tensor(out: Any) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self._tensor(self.model.get_image_features(pixel_values=image.to(self.dtype)))

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        # No attention mask, as in OpenAI's model: attention is causal and the EOT token (the highest id)
        # is pooled, so the zero padding after it never reaches the output.
        return self._tensor(self.model.get_text_features(input_ids=text.long()))


class _OpenCLIP(CLIP):
    def __init__(self, model: Any, resolution: int) -> None:
        super().__init__()
        self.model = model
        self.input_resolution = resolution
        self.visual = model.visual

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(image.to(self.dtype))

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(text.long())


def _spec_for(name: str) -> str:
    if name in _MODELS:
        return _MODELS[name]
    path = Path(name).expanduser()
    if path.is_file():
        raise ModelSpecError(
            f"{name} is a file; OpenAI's .pt checkpoints are TorchScript/pickle archives, which polymodal does "
            "not load. Use the model name (e.g. 'ViT-B/32'), or a directory with a transformers CLIP "
            "(config.json + model.safetensors) or an open_clip model (open_clip_config.json + safetensors)"
        )
    return name


def load(
    name: str, device: str | torch.device | None = None, jit: bool = False, download_root: str | None = None
) -> tuple[CLIP, Callable[[Any], torch.Tensor]]:
    """Return (model, preprocess) like OpenAI's ``clip.load``. ``jit`` is accepted and ignored (no TorchScript)."""
    from polymodal.models import backends, parse_spec

    if download_root is not None:
        import os

        os.environ.setdefault("HF_HOME", str(download_root))
    try:
        spec = parse_spec(_spec_for(name))
    except ModelSpecError as exc:
        raise ModelSpecError(f"{exc}\nOpenAI names: {', '.join(available_models())}") from None
    if spec.scheme not in ("hf", "open_clip"):
        raise ModelSpecError(f"clip.load needs a CLIP model (OpenAI name, hf: or open_clip: spec); got {name!r}")
    device_str = None if device is None else str(device)
    encoder = backends()[spec.scheme].load(spec, device=device_str)
    from polymodal.models.hf import HFEncoder
    from polymodal.models.openclip import OpenCLIPEncoder

    model: CLIP
    preprocess: Callable[[Any], torch.Tensor]
    if isinstance(encoder, HFEncoder):
        if encoder.model_type != "clip":
            raise ModelLoadError(
                f"{name} is a {encoder.model_type} model; clip.load handles CLIP models whose tokens are "
                "OpenAI's. Use polymodal.load_model for it instead"
            )
        proc = encoder.processor
        crop = int(proc.crop_size["height"])
        mean, std = (float(x) for x in proc.image_mean), (float(x) for x in proc.image_std)
        preprocess = ImageTransform(
            resize=int(proc.size.get("shortest_edge", crop)), crop=crop, mean=tuple(mean), std=tuple(std)
        )
        model = _HFCLIP(encoder.model, crop)
    elif isinstance(encoder, OpenCLIPEncoder):
        size = encoder.model.visual.image_size
        model = _OpenCLIP(encoder.model, int(size[0] if isinstance(size, (tuple, list)) else size))
        preprocess = encoder.preprocess
    else:  # pragma: no cover - the scheme check above admits only these two
        raise ModelSpecError(f"clip.load cannot use {name!r}")
    return model.eval().to(encoder.device), preprocess


@functools.cache
def _tokenizer() -> Any:
    # open_clip ships OpenAI's BPE vocabulary and the same text cleaning (ftfy, whitespace, lower case).
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def tokenize(texts: str | list[str], context_length: int = 77, truncate: bool = False) -> torch.Tensor:
    """Token ids, shape (len(texts), context_length), int32 as OpenAI's current ``clip.tokenize`` returns.

    A text longer than the context raises TextTooLongError (a RuntimeError, as OpenAI's does) unless
    ``truncate``, which keeps the first tokens and ends them with EOT.
    """
    if isinstance(texts, str):
        texts = [texts]
    tok = _tokenizer()
    sot, eot = tok.sot_token_id, tok.eot_token_id
    result = torch.zeros(len(texts), context_length, dtype=torch.int)
    for i, text in enumerate(texts):
        ids = [sot, *tok.encode(text), eot]
        if len(ids) > context_length:
            if not truncate:
                raise TextTooLongError(text, context_length, len(ids))
            ids = ids[:context_length]
            ids[-1] = eot
        result[i, : len(ids)] = torch.tensor(ids, dtype=torch.int)
    return result


__all__ = ["CLIP", "available_models", "load", "tokenize"]
