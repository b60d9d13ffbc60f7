"""Encoders behind one interface, the registry, and ``load_model``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from polymodal.models.base import Encoder, EncoderInfo
from polymodal.models.registry import (
    Backend,
    ModelEntry,
    ModelSpec,
    backends,
    list_models,
    parse_spec,
    register_backend,
)

log = logging.getLogger("polymodal")


def _load_lite(spec: ModelSpec, device: str | None = None, batch_size: int | None = None, **options: Any) -> Encoder:
    from polymodal.models.lite.encoder import LiteEncoder

    return LiteEncoder("lite", device=device, batch_size=batch_size, **options)


def _list_lite() -> list[ModelEntry]:
    return [ModelEntry("lite", "lite", "offline: EfficientNet-Lite0 + MiniLM-L6 joined by ConSE (bundled)", True)]


def _load_hf(spec: ModelSpec, device: str | None = None, batch_size: int | None = None, **options: Any) -> Encoder:
    from polymodal.models import hf

    return hf.load(spec, device, batch_size, **options)


def _load_open_clip(
    spec: ModelSpec, device: str | None = None, batch_size: int | None = None, **options: Any
) -> Encoder:
    from polymodal.models import openclip

    return openclip.load(spec, device, batch_size, **options)


def _detect_hf(path: Path) -> bool:
    from polymodal.models import hf

    return hf.detect_dir(path)


def _detect_open_clip(path: Path) -> bool:
    from polymodal.models import openclip

    return openclip.detect_dir(path)


def _list_hf() -> list[ModelEntry]:
    from polymodal.models import hf

    return hf.list_known()


def _list_open_clip() -> list[ModelEntry]:
    from polymodal.models import openclip

    return openclip.list_known()


# The built-ins come in through the same call a plugin uses.
register_backend(Backend("lite", "the offline model, no download ever", ("lite",), _load_lite, False, None, _list_lite))
register_backend(
    Backend(
        "hf",
        "transformers CLIP, SigLIP or Chinese-CLIP from the hub or a directory",
        ("hf:openai/clip-vit-base-patch32", "hf:/path/to/model"),
        _load_hf,
        True,
        _detect_hf,
        _list_hf,
    )
)
register_backend(
    Backend(
        "open_clip",
        "open_clip architecture/pretrained tag, hf-hub: or local-dir: name",
        ("open_clip:ViT-B-32/laion2b_s34b_b79k", "open_clip:hf-hub:timm/ViT-B-16-SigLIP"),
        _load_open_clip,
        True,
        _detect_open_clip,
        _list_open_clip,
    )
)


def load_model(
    spec: str | None = None,
    *,
    device: str | None = None,
    batch_size: int | None = None,
    runtime: str | None = None,
    precision: str | None = None,
    fast_preprocess: bool = True,
    **options: Any,
) -> Encoder:
    """Load an encoder by spec; with no spec, the configured or default model (falling back to ``lite`` offline).

    ``device``: auto (default), cpu, cuda, cuda:N or mps. ``runtime``: ``onnx`` (default on CPU) or ``torch``
    (default on GPU); ``precision``: ``fp32`` (default) or ``int8`` (onnx only). ONNX exports are made once
    per model, cached, and checked against torch; a failed check keeps torch and says so in the log.
    ``fast_preprocess=False`` uses the model's own processor at full decode size (the reference pipeline).
    """
    from polymodal.config import load_settings
    from polymodal.models.base import resolve_device
    from polymodal.models.default import resolve_model
    from polymodal.models.runtime import check_runtime, use_onnx

    resolution = resolve_model(spec)
    if resolution.notice:
        log.warning(resolution.notice)
    parsed = parse_spec(resolution.spec)
    device = resolve_device(device or load_settings().device)
    runtime, precision = check_runtime(runtime, precision, device.split(":")[0])
    if fast_preprocess is not True:
        options["fast_preprocess"] = fast_preprocess
    encoder = backends()[parsed.scheme].load(parsed, device=device, batch_size=batch_size, **options)
    if runtime == "onnx":
        use_onnx(encoder, precision)
    return encoder


__all__ = [
    "Backend",
    "Encoder",
    "EncoderInfo",
    "ModelEntry",
    "ModelSpec",
    "list_models",
    "load_model",
    "parse_spec",
    "register_backend",
]

from polymodal.models.lite.tuned import BACKEND as _LITE_TUNED  # noqa: E402 - registered last, like a plugin

register_backend(_LITE_TUNED)
