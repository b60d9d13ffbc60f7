"""One registry of encoder backends, and the one function that parses a model spec.

A spec carries its scheme: ``lite``, ``hf:<hub id or dir>``, ``open_clip:<arch>/<tag>`` (or open_clip's own
``hf-hub:`` / ``local-dir:`` names), or a plain local directory whose format is detected from its files.
The built-in backends register through ``register_backend`` exactly as a plugin does (entry-point group
``polymodal.models``, whose objects are ``Backend`` instances), and each imports its heavy dependencies only
when a model is actually loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polymodal.registry import Registry, Spec

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

ENTRY_POINT_GROUP = "polymodal.models"
ModelSpec = Spec


@dataclass(frozen=True)
class ModelEntry:
    """One loadable model, as ``list_models`` reports it."""

    name: str  # a spec that loads it
    backend: str
    description: str
    available: bool  # loadable right now without the network (bundled or already cached)


@dataclass(frozen=True)
class Backend:
    scheme: str  # the prefix before ':' in a spec
    description: str
    examples: tuple[str, ...]
    load: Callable[..., Encoder]  # (spec: ModelSpec, device: str | None, batch_size: int | None) -> Encoder
    needs_target: bool = True  # False for self-contained names such as "lite"
    detect_dir: Callable[[Path], bool] | None = None  # recognises a local directory in this backend's format
    list_models: Callable[[], list[ModelEntry]] = field(default=lambda: [])
    #: the files a spec's weights, tokenizer and config are read from, found without loading the model (and
    #: without importing torch or the backend's library), or None when they cannot be known cheaply. The
    #: export cache is keyed by their contents, which lets a warm load skip torch entirely.
    source_files: Callable[[ModelSpec], list[Path] | None] | None = None


REGISTRY: Registry[Backend] = Registry(
    "model", ENTRY_POINT_GROUP, Backend,
    "config.json of a transformers CLIP/SigLIP/Chinese-CLIP model, open_clip_config.json, or the "
    "polymodal_lite.json of a fine-tuned lite",
)


def register_backend(backend: Backend) -> None:
    """Add (or replace) a backend. Built-ins and plugins both come through here."""
    REGISTRY.register(backend)


def backends() -> dict[str, Backend]:
    return REGISTRY.backends()


def parse_spec(spec: str) -> ModelSpec:
    """The one place a model spec is parsed."""
    return REGISTRY.parse(spec)


def list_models() -> list[ModelEntry]:
    """Every model the registered backends know of by name (a local directory works too, unlisted)."""
    return REGISTRY.list()
