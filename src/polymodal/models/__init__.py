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


def _lite_files(spec: ModelSpec) -> list[Path]:
    from polymodal.models.lite.files import source_files

    return source_files()


def _hf_files(spec: ModelSpec) -> list[Path] | None:
    from polymodal.models import hf

    return hf.source_files(spec)


def _open_clip_files(spec: ModelSpec) -> list[Path] | None:
    from polymodal.models import openclip

    return openclip.source_files(spec)


def _load_bundle(spec: ModelSpec, device: str | None = None, batch_size: int | None = None,
                 **options: Any) -> Encoder:
    from polymodal.models.bundle import BundleEncoder

    return BundleEncoder(spec.target, name=str(spec.raw), batch_size=batch_size)


def _detect_bundle(path: Path) -> bool:
    from polymodal.models.bundle import is_bundle

    return is_bundle(path)


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
register_backend(Backend("bundle", "a model exported by `polymodal models export` (ONNX, no torch needed)",
                         ("bundle:/path/to/dir", "/path/to/dir"), _load_bundle, True, _detect_bundle))
register_backend(Backend("lite", "the offline model, no download ever", ("lite",), _load_lite, False, None, _list_lite,
                         source_files=_lite_files))
register_backend(
    Backend(
        "hf",
        "transformers CLIP, SigLIP or Chinese-CLIP from the hub or a directory",
        ("hf:openai/clip-vit-base-patch32", "hf:/path/to/model"),
        _load_hf,
        True,
        _detect_hf,
        _list_hf,
        source_files=_hf_files,
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
        source_files=_open_clip_files,
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
    (default on GPU); ``precision``: ``fp32`` (default) or ``int8`` (onnx only). On ONNX a model is exported
    once to a bundle in the cache dir, checked against torch, and from then on loaded without torch
    (``polymodal.models.exports``); a network whose export fails its check runs on torch and the log says so.
    A bundle directory (``polymodal models export``) is a spec too. ``fast_preprocess=False`` uses the
    model's own processor at full decode size (the reference pipeline, run in torch).
    """
    from polymodal.config import load_settings
    from polymodal.models.base import resolve_device
    from polymodal.models.default import resolve_model
    from polymodal.models.runtime import check_runtime, use_onnx

    resolution = resolve_model(spec)
    if resolution.notice:
        log.warning(resolution.notice)
    parsed = parse_spec(resolution.spec)
    asked = device or load_settings().device
    if parsed.scheme == "bundle":
        return _open_bundle(parsed, asked, batch_size, runtime, precision)
    device = resolve_device(asked)
    runtime, precision = check_runtime(runtime, precision, device.split(":")[0])
    if fast_preprocess is not True:
        options["fast_preprocess"] = fast_preprocess
    backend = backends()[parsed.scheme]
    if runtime == "onnx":
        from polymodal.models.exports import load_cached

        cached = load_cached(parsed, backend, precision, batch_size, options)
        if cached is not None:
            return cached
    from polymodal.machine import torch_threads

    torch_threads()  # the backend builds torch networks: their pool honours --threads too
    encoder = backend.load(parsed, device=device, batch_size=batch_size, **options)
    if runtime == "onnx":
        use_onnx(encoder, precision)
    return encoder


def _open_bundle(parsed: ModelSpec, device: str | None, batch_size: int | None, runtime: str | None,
                 precision: str | None) -> Encoder:
    from polymodal.errors import InputError
    from polymodal.models.bundle import BundleEncoder

    if runtime not in (None, "onnx"):
        raise InputError(f"{parsed.raw} is an exported bundle, which runs on ONNX Runtime only; leave out "
                         f"--runtime {runtime}, or use the model it was exported from")
    if device not in (None, "", "auto", "cpu"):
        raise InputError(f"{parsed.raw} is an exported bundle, which runs on the CPU; use --device cpu")
    encoder = BundleEncoder(parsed.target, name=str(parsed.raw), batch_size=batch_size)
    if precision is not None and precision != encoder.precision:
        raise InputError(f"bundle {parsed.raw} was exported at {encoder.precision}, not {precision}; export it "
                         f"again with `polymodal models export {encoder.source_spec} DIR --precision {precision}`")
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
