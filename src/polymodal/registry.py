"""The machinery every spec registry shares: encoders (``polymodal.models``) and generators
(``polymodal.generation``) both name what to load as ``<scheme>:<target>``, a bare self-contained name, or a
local directory whose format is detected from its files.

A ``Registry`` holds one kind of backend, loads plugins from its entry-point group the first time it is
asked, parses specs in one place and lists what would work when a spec does not. Each kind keeps its own
backend dataclass (what a backend must provide differs); both expose the fields read here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from polymodal.errors import ModelSpecError

log = logging.getLogger("polymodal")


@dataclass(frozen=True)
class Spec:
    scheme: str  # backend name, e.g. "hf" or "diffusers"
    target: str  # what follows the scheme: hub id, directory, "arch/tag"; "" for self-contained names
    raw: str  # the spec as the user wrote it

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}" if self.target else self.scheme


class BackendLike(Protocol):
    @property
    def scheme(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def examples(self) -> tuple[str, ...]: ...
    @property
    def needs_target(self) -> bool: ...
    @property
    def detect_dir(self) -> Callable[[Path], bool] | None: ...
    @property
    def list_models(self) -> Callable[[], list[Any]]: ...


B = TypeVar("B", bound=BackendLike)


class Registry(Generic[B]):
    """Backends of one kind by scheme. ``kind`` names the thing in messages ("model", "generator")."""

    def __init__(self, kind: str, group: str, backend_type: type, directory_formats: str,
                 noun: str | None = None) -> None:
        self.kind = kind
        self._noun = noun or kind  # what a directory should hold, in messages ("image generator")
        self.group = group  # entry-point group plugins register under
        self._backend_type = backend_type
        self._directory_formats = directory_formats  # what a local directory may hold, for messages
        self._backends: dict[str, B] = {}
        self._plugins_loaded = False

    def register(self, backend: B) -> None:
        """Add (or replace) a backend. Built-ins and plugins both come through here."""
        self._backends[backend.scheme] = backend

    def unregister(self, scheme: str) -> None:
        self._backends.pop(scheme, None)

    def backends(self) -> dict[str, B]:
        self._load_plugins()
        return dict(self._backends)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
                self.register(obj() if callable(obj) and not isinstance(obj, self._backend_type) else obj)
            except Exception as exc:  # noqa: BLE001 - one broken plugin must not take the built-ins down with it
                log.warning("%s plugin %s could not be loaded: %s", self.kind, ep.name, exc)

    def what_works(self) -> str:
        lines = [f"  {b.scheme}: {b.description} (e.g. {', '.join(b.examples)})" for b in self.backends().values()]
        title = "specs that work:" if self.kind == "model" else f"{self.kind} specs that work:"
        return "\n".join([title, *lines, f"  a local directory holding {self._directory_formats}"])

    def parse(self, spec: str, *, bare_takes_target: bool = False,
              hint: Callable[[str], str | None] | None = None) -> Spec:
        """The one place a spec of this kind is parsed.

        ``bare_takes_target``: whether a scheme that works bare (``needs_target=False``) may still be given a
        target (generators: ``openai`` = the provider's default model, ``openai:dall-e-3`` = that one).
        ``hint``: a last, kind-specific explanation for a spec nothing recognised.
        """
        raw, kind, works = spec, self.kind, self.what_works
        spec = spec.strip()
        if not spec:
            raise ModelSpecError(f"empty {kind} spec\n{works()}")
        table = self.backends()
        if spec in table and not table[spec].needs_target:
            return Spec(spec, "", raw)
        scheme, sep, rest = spec.partition(":")
        if sep and scheme in table:
            backend = table[scheme]
            if backend.needs_target and not rest.strip():
                raise ModelSpecError(f"{kind} spec {raw!r} names no model after '{scheme}:'\n{works()}")
            if not backend.needs_target and not bare_takes_target:
                raise ModelSpecError(
                    f"{kind} spec {raw!r}: '{scheme}' takes nothing after it; write just '{scheme}'\n{works()}"
                )
            return Spec(scheme, rest.strip(), raw)
        path = Path(spec).expanduser()
        if path.is_dir():
            for backend in table.values():
                if backend.detect_dir is not None and backend.detect_dir(path):
                    return Spec(backend.scheme, str(path.resolve()), raw)
            raise ModelSpecError(
                f"directory {spec} holds no {self._noun} polymodal recognises (looked for {self._directory_formats})"
                f"\n{works()}"
            )
        if path.exists():
            raise ModelSpecError(f"{kind} spec {raw!r} is a file; give the directory that holds it\n{works()}")
        extra = hint(spec) if hint is not None else None
        if extra:
            raise ModelSpecError(f"{kind} spec {raw!r}: {extra}\n{works()}")
        raise ModelSpecError(f"{kind} spec {raw!r} names nothing polymodal can load\n{works()}")

    def list(self) -> list[Any]:
        """Every model the registered backends know of by name (a local directory works too, unlisted)."""
        out: list[Any] = []
        for backend in self.backends().values():
            try:
                out.extend(backend.list_models())
            except Exception as exc:  # noqa: BLE001 - listing is best effort per backend
                log.warning("%s backend %s could not list its models: %s", self.kind, backend.scheme, exc)
        return out
