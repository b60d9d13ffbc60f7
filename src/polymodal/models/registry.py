"""One registry of encoder backends, and the one function that parses a model spec.

A spec carries its scheme: ``lite``, ``hf:<hub id or dir>``, ``open_clip:<arch>/<tag>`` (or open_clip's own
``hf-hub:`` / ``local-dir:`` names), or a plain local directory whose format is detected from its files.
The built-in backends register through ``register_backend`` exactly as a plugin does (entry-point group
``polymodal.models``, whose objects are ``Backend`` instances), and each imports its heavy dependencies only
when a model is actually loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polymodal.errors import ModelSpecError

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

log = logging.getLogger("polymodal")
ENTRY_POINT_GROUP = "polymodal.models"


@dataclass(frozen=True)
class ModelSpec:
    scheme: str  # backend name, e.g. "hf"
    target: str  # what follows the scheme: hub id, directory, "arch/tag"; "" for self-contained models
    raw: str  # the spec as the user wrote it

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}" if self.target else self.scheme


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


_BACKENDS: dict[str, Backend] = {}
_plugins_loaded = False


def register_backend(backend: Backend) -> None:
    """Add (or replace) a backend. Built-ins and plugins both come through here."""
    _BACKENDS[backend.scheme] = backend


def backends() -> dict[str, Backend]:
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
            register_backend(obj() if callable(obj) and not isinstance(obj, Backend) else obj)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not take the built-ins down with it
            log.warning("model plugin %s could not be loaded: %s", ep.name, exc)


def _what_works() -> str:
    lines = [f"  {b.scheme}: {b.description} (e.g. {', '.join(b.examples)})" for b in backends().values()]
    return "\n".join(["specs that work:", *lines, "  a local directory holding a model in one of those formats"])


def parse_spec(spec: str) -> ModelSpec:
    """The one place a model spec is parsed."""
    raw = spec
    spec = spec.strip()
    if not spec:
        raise ModelSpecError(f"empty model spec\n{_what_works()}")
    table = backends()
    if spec in table and not table[spec].needs_target:
        return ModelSpec(spec, "", raw)
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in table:
        backend = table[scheme]
        if backend.needs_target and not rest.strip():
            raise ModelSpecError(f"model spec {raw!r} names no model after '{scheme}:'\n{_what_works()}")
        if not backend.needs_target:
            raise ModelSpecError(
                f"model spec {raw!r}: '{scheme}' takes nothing after it; write just '{scheme}'\n{_what_works()}"
            )
        return ModelSpec(scheme, rest.strip(), raw)
    path = Path(spec).expanduser()
    if path.is_dir():
        for backend in table.values():
            if backend.detect_dir is not None and backend.detect_dir(path):
                return ModelSpec(backend.scheme, str(path.resolve()), raw)
        raise ModelSpecError(
            f"directory {spec} holds no model polymodal recognises (looked for config.json of a transformers "
            f"CLIP/SigLIP/Chinese-CLIP model and open_clip_config.json)\n{_what_works()}"
        )
    if path.exists():
        raise ModelSpecError(f"model spec {raw!r} is a file; give the directory that holds the model\n{_what_works()}")
    raise ModelSpecError(f"model spec {raw!r} names nothing polymodal can load\n{_what_works()}")


def list_models() -> list[ModelEntry]:
    """Every model the registered backends know of by name (a local directory works too, unlisted)."""
    out: list[ModelEntry] = []
    for backend in backends().values():
        try:
            out.extend(backend.list_models())
        except Exception as exc:  # noqa: BLE001 - listing is best effort per backend
            log.warning("backend %s could not list its models: %s", backend.scheme, exc)
    return out
