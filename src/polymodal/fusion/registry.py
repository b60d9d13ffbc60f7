"""One registry of fusion modules. The built-ins register through ``register_fusion``, as a plugin would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from polymodal.errors import InputError
from polymodal.fusion.modules import (
    EARLY_COMBINE,
    EARLY_JOINT,
    HEAD_COMBINE,
    EarlyFusion,
    FusionConfig,
    FusionModel,
    HybridFusion,
    LateFusion,
)


@dataclass(frozen=True)
class FusionKind:
    name: str  # what --fusion takes
    description: str
    build: Callable[[FusionConfig], FusionModel]
    check: Callable[[FusionConfig], None] | None = None  # raises InputError for options it does not take
    tokens: bool = False  # uses the encoder's token sequences (feature kind "tokens") where it has them


_FUSIONS: dict[str, FusionKind] = {}


def register_fusion(kind: FusionKind) -> None:
    """Add (or replace) a fusion kind."""
    _FUSIONS[kind.name] = kind


def fusions() -> dict[str, FusionKind]:
    return dict(_FUSIONS)


def check_config(config: FusionConfig) -> None:
    """Fail early, naming the option, for a config no module can be built from."""
    if config.kind not in _FUSIONS:
        raise InputError(f"unknown fusion {config.kind!r}; choose one of {', '.join(sorted(_FUSIONS))}")
    if not config.modalities or len(config.modalities) != len(config.dims):
        raise InputError(f"fusion needs one feature width per modality, got {config.modalities} and {config.dims}")
    if config.token_layouts and len(config.token_layouts) != len(config.modalities):
        raise InputError(f"fusion needs one token layout (or none) per modality, got {len(config.token_layouts)}")
    if config.num_classes < 2:
        raise InputError(f"fusion needs at least 2 classes, got {config.num_classes}")
    if config.hidden < 1 or config.tokens < 1 or config.layers < 1:
        raise InputError("hidden width, tokens and layers must each be at least 1")
    if config.hidden % config.heads:
        raise InputError(f"hidden width {config.hidden} must be a multiple of the {config.heads} attention heads")
    if not 0.0 <= config.dropout < 1.0:
        raise InputError(f"dropout must be in [0, 1), got {config.dropout}")
    kind = _FUSIONS[config.kind]
    if kind.check is not None:
        kind.check(config)


def build_fusion(config: FusionConfig) -> FusionModel:
    check_config(config)
    return _FUSIONS[config.kind].build(config)


def _one_of(option: str, value: str, allowed: tuple[str, ...], kind: str) -> None:
    if value not in allowed:
        raise InputError(f"{kind} fusion: {option} {value!r} is not one of {', '.join(allowed)}")


def _check_early(c: FusionConfig) -> None:
    _one_of("combine", c.combine, EARLY_COMBINE, "early")
    _one_of("joint", c.joint, EARLY_JOINT, "early")


def _check_heads(c: FusionConfig) -> None:
    _one_of("head combine", c.head_combine, HEAD_COMBINE, c.kind)


register_fusion(FusionKind(
    "early", "project to a shared width, join (concat, product or gated), joint MLP or transformer",
    EarlyFusion, _check_early))
register_fusion(FusionKind(
    "late", "a head per modality; logits combined by mean, learned weights or product of experts",
    LateFusion, _check_heads))
register_fusion(FusionKind(
    "hybrid", "cross-modal attention between the modalities' tokens, per-modality heads plus a joint head",
    HybridFusion, _check_heads, tokens=True))
