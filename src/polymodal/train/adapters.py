"""What fine-tuning needs from each backend: the towers with gradients, the parameters of each mode, and
how to save the result as a directory that loads as a model spec.

Modes: ``projections`` trains only the two projection heads and the temperature (cheap, least forgetting);
``lit`` locks the image tower and trains the text side (Zhai et al. 2022, "LiT: Zero-Shot Transfer with
Locked-image text Tuning"); ``full`` trains everything. For ``lite``, whose towers are an ImageNet classifier
and a sentence encoder that were never trained together, fine-tuning learns a projection from the image
tower's 1280-d features into the MiniLM text space with the text side locked — LiT's recipe with the roles
of the towers swapped, since here the text space is the one worth keeping.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from polymodal.errors import InputError
from polymodal.models.base import Encoder

MODES = ("projections", "lit", "full")


class Adapter(ABC):
    """A dual encoder opened up for training. ``module`` holds every parameter that may change."""

    #: modes this backend can train
    modes: tuple[str, ...] = MODES

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.device = encoder.device

    @property
    @abstractmethod
    def module(self) -> nn.Module: ...

    @property
    @abstractmethod
    def log_scale(self) -> torch.Tensor:
        """The learnable log logit scale (a parameter of ``module``)."""

    @abstractmethod
    def trainable(self, mode: str) -> list[nn.Parameter]:
        """Set requires_grad for ``mode`` and return the parameters to optimise."""

    @abstractmethod
    def images(self, paths: list[str]) -> Any: ...

    @abstractmethod
    def texts(self, texts: list[str]) -> Any: ...

    @abstractmethod
    def embed_images(self, batch: Any) -> torch.Tensor: ...

    @abstractmethod
    def embed_texts(self, batch: Any) -> torch.Tensor: ...

    @abstractmethod
    def save(self, out: Path, wise_alpha: float) -> None:
        """Write a directory that ``load_model`` recognises."""

    def check_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise InputError(f"{self.encoder.name} ({self.encoder.backend}) cannot be fine-tuned in mode {mode!r}; "
                             f"it supports {', '.join(self.modes)}")

    def train(self, on: bool) -> None:
        self.module.train(on)


def _pixels(encoder: Encoder, paths: list[str], device: str) -> torch.Tensor:
    """Preprocessed images as one float tensor (a backend's preprocess may give tensors or arrays)."""
    import numpy as np

    arrays = [np.asarray(encoder.preprocess_image(encoder.load_image(p)), dtype=np.float32) for p in paths]
    return torch.from_numpy(np.stack(arrays)).to(device)


def _features(out: Any) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output holds the projected features.
    return out if hasattr(out, "shape") else out.pooler_output


def _select(model: nn.Module, prefixes: tuple[str, ...] | None) -> list[nn.Parameter]:
    out = []
    for name, p in model.named_parameters():
        p.requires_grad_(prefixes is None or name.startswith(prefixes))
        if p.requires_grad:
            out.append(p)
    return out


class _DualTowerAdapter(Adapter):
    """A backend whose one torch module holds both towers and a ``logit_scale`` parameter."""

    #: the image tower's attribute, kept in inference behaviour (dropout, norms) while locked under LiT
    IMAGE_TOWER: ClassVar[str]

    def __init__(self, encoder: Any) -> None:
        super().__init__(encoder)
        self.model = encoder.model
        self.mode = "full"

    @property
    def module(self) -> nn.Module:
        return self.model

    @property
    def log_scale(self) -> torch.Tensor:
        return self.model.logit_scale

    def train(self, on: bool) -> None:
        self.model.train(on)
        if on and self.mode == "lit":
            getattr(self.model, self.IMAGE_TOWER).eval()

    def images(self, paths: list[str]) -> Any:
        return _pixels(self.encoder, paths, self.device)


class HFAdapter(_DualTowerAdapter):
    """transformers CLIPModel / ChineseCLIPModel."""

    IMAGE_TOWER = "vision_model"

    PREFIXES: ClassVar[dict[str, tuple[str, ...] | None]] = {
        "projections": ("visual_projection", "text_projection", "logit_scale"),
        "lit": ("text_model", "text_projection", "logit_scale"),
        "full": None,
    }

    def __init__(self, encoder: Any) -> None:
        if encoder.model_type == "siglip":
            raise InputError(f"{encoder.name} is SigLIP, trained with a sigmoid loss and a bias; fine-tuning it "
                             "with InfoNCE would change what its scores mean, so polymodal does not (yet)")
        super().__init__(encoder)

    def trainable(self, mode: str) -> list[nn.Parameter]:
        self.check_mode(mode)
        self.mode = mode
        return _select(self.model, self.PREFIXES[mode])

    def texts(self, texts: list[str]) -> Any:
        enc: Any = self.encoder
        keep = {"input_ids", "attention_mask"} | ({"token_type_ids"} if enc.model_type == "chinese_clip" else set())
        # Cut to the context, as CLIP's training did, rather than stop a run on one long caption.
        tokens = enc.tokenizer(texts, padding=enc.padding, truncation=True, max_length=enc.context_length,
                               return_tensors="pt")
        return {k: v.to(self.device) for k, v in tokens.items() if k in keep}

    def embed_images(self, batch: Any) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=batch))

    def embed_texts(self, batch: Any) -> torch.Tensor:
        return _features(self.model.get_text_features(**batch))

    def save(self, out: Path, wise_alpha: float) -> None:
        self.model.save_pretrained(out)
        self.encoder.tokenizer.save_pretrained(out)  # type: ignore[attr-defined]
        self.encoder.processor.save_pretrained(out)  # type: ignore[attr-defined]


class OpenCLIPAdapter(_DualTowerAdapter):
    """open_clip CLIP models (the classic tower layout: ``visual`` + text transformer)."""

    IMAGE_TOWER = "visual"

    def __init__(self, encoder: Any) -> None:
        super().__init__(encoder)
        if not hasattr(self.model, "visual") or not hasattr(self.model, "text_projection"):
            raise InputError(f"{encoder.name}: only open_clip models with the CLIP tower layout can be fine-tuned")

    def trainable(self, mode: str) -> list[nn.Parameter]:
        self.check_mode(mode)
        self.mode = mode
        prefixes = {"projections": ("visual.proj", "text_projection", "logit_scale"), "full": None}.get(mode)
        if mode == "lit":
            names = [n for n, _ in self.model.named_parameters() if not n.startswith("visual.")]
            prefixes = tuple(names)
        return _select(self.model, prefixes)

    def texts(self, texts: list[str]) -> Any:
        return self.encoder.tokenizer(texts).to(self.device)  # type: ignore[attr-defined]

    def embed_images(self, batch: Any) -> torch.Tensor:
        return self.model.encode_image(batch)

    def embed_texts(self, batch: Any) -> torch.Tensor:
        return self.model.encode_text(batch)

    def save(self, out: Path, wise_alpha: float) -> None:
        import open_clip
        from safetensors.torch import save_file

        from polymodal.models import parse_spec
        from polymodal.models.openclip import open_clip_name

        name, _ = open_clip_name(parse_spec(self.encoder.name).target)
        if name.startswith("local-dir:"):
            cfg = json.loads((Path(name[len("local-dir:"):]) / "open_clip_config.json").read_text(encoding="utf-8"))
        elif name.startswith("hf-hub:"):
            # open_clip fetched this file when it loaded the model, so it is in the local hub cache.
            from huggingface_hub import hf_hub_download

            cfg_path = hf_hub_download(name[len("hf-hub:"):], "open_clip_config.json")
            cfg = json.loads(Path(cfg_path).read_text(encoding="utf-8"))
        else:
            model_cfg = open_clip.get_model_config(name)
            if model_cfg is None:
                raise InputError(f"cannot find the open_clip config of {self.encoder.name} to save the result")
            pp = dict(getattr(self.model.visual, "preprocess_cfg", {}) or {})
            cfg = {"model_cfg": model_cfg, "preprocess_cfg": pp}
        (out / "open_clip_config.json").write_text(json.dumps(cfg), encoding="utf-8")
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.model.state_dict().items()}
        save_file(state, str(out / "open_clip_model.safetensors"))


class LiteProjection(nn.Module):
    def __init__(self, feature_dim: int, dim: int, log_scale: float) -> None:
        super().__init__()
        self.proj = nn.Linear(feature_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(log_scale)))


class LiteAdapter(Adapter):
    """``lite``: a linear map from EfficientNet-Lite0's pooled features into the frozen MiniLM space."""

    modes = ("projections", "lit")  # both mean the same here: only the projection (and temperature) learn

    def __init__(self, encoder: Any) -> None:
        super().__init__(encoder)
        from polymodal.models.lite.efficientnet import LITE0_HEAD
        from polymodal.models.lite.encoder import LOGIT_SCALE

        torch.manual_seed(0)  # the caller reseeds before training; this only makes construction repeatable
        self.head = LiteProjection(LITE0_HEAD, encoder.dim, math.log(LOGIT_SCALE)).to(self.device)
        self._image_memo: dict[str, torch.Tensor] = {}
        self._text_memo: dict[str, torch.Tensor] = {}

    @property
    def module(self) -> nn.Module:
        return self.head

    @property
    def log_scale(self) -> torch.Tensor:
        return self.head.logit_scale

    def trainable(self, mode: str) -> list[nn.Parameter]:
        self.check_mode(mode)
        return _select(self.head, None)

    def images(self, paths: list[str]) -> Any:
        # Both towers are frozen, so each image's features are computed once and reused every epoch.
        todo = [p for p in dict.fromkeys(paths) if p not in self._image_memo]
        if todo:
            enc = self.encoder
            with torch.inference_mode():
                x = _pixels(enc, todo, self.device)
                feats = enc.classifier.features(x).float()  # type: ignore[attr-defined]
            self._image_memo.update({p: f.clone() for p, f in zip(todo, feats)})
        return torch.stack([self._image_memo[p] for p in paths])

    def texts(self, texts: list[str]) -> Any:
        todo = [t for t in dict.fromkeys(texts) if t not in self._text_memo]
        if todo:
            emb = torch.from_numpy(self.encoder.encode_texts(todo, truncate=True)).to(self.device)
            self._text_memo.update({t: e for t, e in zip(todo, emb)})
        return torch.stack([self._text_memo[t] for t in texts])

    def embed_images(self, batch: Any) -> torch.Tensor:
        return self.head.proj(batch)

    def embed_texts(self, batch: Any) -> torch.Tensor:
        return batch

    def save(self, out: Path, wise_alpha: float) -> None:
        from polymodal.models.lite.tuned import save_tuned

        scale = float(self.head.logit_scale.detach().exp())
        save_tuned(out, self.head.proj.weight, self.head.proj.bias, scale, wise_alpha)


def adapter_for(encoder: Encoder) -> Adapter:
    """The training view of a loaded encoder; an error naming what can be fine-tuned otherwise."""
    from polymodal.models.hf import HFEncoder
    from polymodal.models.lite.encoder import LiteEncoder
    from polymodal.models.openclip import OpenCLIPEncoder

    if isinstance(encoder, LiteEncoder):
        return LiteAdapter(encoder)
    if isinstance(encoder, HFEncoder):
        return HFAdapter(encoder)
    if isinstance(encoder, OpenCLIPEncoder):
        return OpenCLIPAdapter(encoder)
    raise InputError(f"model {encoder.name} ({encoder.backend}) cannot be fine-tuned; polymodal fine-tunes lite, "
                     "transformers CLIP / Chinese-CLIP (hf:...) and open_clip CLIP models")
