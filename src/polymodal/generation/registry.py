"""One registry of image generators, and the one function that parses a generator spec.

Same shape as the encoder registry (``polymodal.models.registry``): a spec carries its scheme —
``diffusers:<hub id or dir>`` for a local pipeline, ``openai:<model>`` for an OpenAI-compatible Images API —
or is a plain local directory whose format is detected from its files (a diffusers ``model_index.json``).
Built-ins register through ``register_generator`` as a plugin does (entry-point group
``polymodal.generators``), and import their heavy dependencies only when a generator is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polymodal.registry import Registry, Spec

if TYPE_CHECKING:
    from polymodal.generation.base import Generator

ENTRY_POINT_GROUP = "polymodal.generators"
DEFAULT_GENERATOR = "diffusers:stabilityai/sd-turbo"
GeneratorSpec = Spec


@dataclass(frozen=True)
class GeneratorEntry:
    """One generator known by name, as ``list_generators`` reports it."""

    name: str  # a spec that loads it
    backend: str
    description: str


@dataclass(frozen=True)
class GeneratorBackend:
    scheme: str  # the prefix before ':' in a spec
    description: str
    examples: tuple[str, ...]
    load: Callable[..., Generator]  # (spec: GeneratorSpec, device: str | None, **options) -> Generator
    needs_target: bool = True  # False where a bare scheme means "the backend's default model"
    detect_dir: Callable[[Path], bool] | None = None  # recognises a local directory in this backend's format
    list_models: Callable[[], list[GeneratorEntry]] = field(default=lambda: [])


REGISTRY: Registry[GeneratorBackend] = Registry(
    "generator", ENTRY_POINT_GROUP, GeneratorBackend, "a diffusers pipeline (model_index.json)",
    noun="image generator",
)


def register_generator(backend: GeneratorBackend) -> None:
    """Add (or replace) a generator backend. Built-ins and plugins both come through here."""
    REGISTRY.register(backend)


def generator_backends() -> dict[str, GeneratorBackend]:
    return REGISTRY.backends()


def _hub_hint(spec: str) -> str | None:
    # "org/name" reads as a hub id; the encoder registry wants a scheme there too, so say which one.
    if "/" in spec and not spec.startswith((".", "/", "~")) and "diffusers" in REGISTRY.backends():
        return f"for a hub pipeline write 'diffusers:{spec}'"
    return None


def parse_generator_spec(spec: str) -> GeneratorSpec:
    """The one place a generator spec is parsed."""
    return REGISTRY.parse(spec, bare_takes_target=True, hint=_hub_hint)


def list_generators() -> list[GeneratorEntry]:
    """Every generator the registered backends know of by name (a local pipeline directory works too)."""
    return REGISTRY.list()
