"""One registry of image generators, and the one function that parses a generator spec.

Same shape as the encoder registry (``polymodal.models.registry``): a spec carries its scheme —
``diffusers:<hub id or dir>`` for a local pipeline, ``openai:<model>`` for an OpenAI-compatible Images API —
or is a plain local directory whose format is detected from its files (a diffusers ``model_index.json``).
Built-ins register through ``register_generator`` as a plugin does (entry-point group
``polymodal.generators``), and import their heavy dependencies only when a generator is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polymodal.errors import ModelSpecError

if TYPE_CHECKING:
    from polymodal.generation.base import Generator

log = logging.getLogger("polymodal")
ENTRY_POINT_GROUP = "polymodal.generators"
DEFAULT_GENERATOR = "diffusers:stabilityai/sd-turbo"


@dataclass(frozen=True)
class GeneratorSpec:
    scheme: str  # backend name, e.g. "diffusers"
    target: str  # hub id, directory or provider model name; "" lets the backend pick its default
    raw: str  # the spec as the user wrote it

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}" if self.target else self.scheme


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


_BACKENDS: dict[str, GeneratorBackend] = {}
_plugins_loaded = False


def register_generator(backend: GeneratorBackend) -> None:
    """Add (or replace) a generator backend. Built-ins and plugins both come through here."""
    _BACKENDS[backend.scheme] = backend


def generator_backends() -> dict[str, GeneratorBackend]:
    _load_plugins()
    return dict(_BACKENDS)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            register_generator(obj() if callable(obj) and not isinstance(obj, GeneratorBackend) else obj)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not take the built-ins down with it
            log.warning("generator plugin %s could not be loaded: %s", ep.name, exc)


def _what_works() -> str:
    lines = [f"  {b.scheme}: {b.description} (e.g. {', '.join(b.examples)})" for b in generator_backends().values()]
    return "\n".join(["generator specs that work:", *lines, "  a local directory holding a diffusers pipeline"])


def parse_generator_spec(spec: str) -> GeneratorSpec:
    """The one place a generator spec is parsed."""
    raw = spec
    spec = spec.strip()
    if not spec:
        raise ModelSpecError(f"empty generator spec\n{_what_works()}")
    table = generator_backends()
    if spec in table and not table[spec].needs_target:
        return GeneratorSpec(spec, "", raw)
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in table:
        backend = table[scheme]
        if backend.needs_target and not rest.strip():
            raise ModelSpecError(f"generator spec {raw!r} names no model after '{scheme}:'\n{_what_works()}")
        return GeneratorSpec(scheme, rest.strip(), raw)
    path = Path(spec).expanduser()
    if path.is_dir():
        for backend in table.values():
            if backend.detect_dir is not None and backend.detect_dir(path):
                return GeneratorSpec(backend.scheme, str(path.resolve()), raw)
        raise ModelSpecError(
            f"directory {spec} holds no image generator polymodal recognises (looked for a diffusers "
            f"model_index.json)\n{_what_works()}"
        )
    if path.exists():
        raise ModelSpecError(
            f"generator spec {raw!r} is a file; give the directory that holds the pipeline\n{_what_works()}"
        )
    if "/" in spec and not spec.startswith((".", "/", "~")) and "diffusers" in table:
        # "org/name" reads as a hub id; the encoder registry wants a scheme there too, so say which one.
        raise ModelSpecError(f"generator spec {raw!r}: for a hub pipeline write 'diffusers:{spec}'\n{_what_works()}")
    raise ModelSpecError(f"generator spec {raw!r} names nothing polymodal can load\n{_what_works()}")


def list_generators() -> list[GeneratorEntry]:
    """Every generator the registered backends know of by name (a local pipeline directory works too)."""
    out: list[GeneratorEntry] = []
    for backend in generator_backends().values():
        try:
            out.extend(backend.list_models())
        except Exception as exc:  # noqa: BLE001 - listing is best effort per backend
            log.warning("generator backend %s could not list its models: %s", backend.scheme, exc)
    return out
