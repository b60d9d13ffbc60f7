"""User settings: the config file, overridden by environment variables, overridden by explicit arguments."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polymodal.errors import ConfigError
from polymodal.paths import config_file


@dataclass(frozen=True)
class Settings:
    model: str | None = None  # model spec; None means the built-in default
    device: str | None = None  # auto, cpu, cuda, mps
    library: str | None = None  # library directory
    source: Path | None = None  # the config file these came from, when there was one


_KNOWN = {"model", "device", "library"}


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file (TOML) if it exists; unknown keys and wrong types are errors that name the file."""
    path = path or config_file()
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        unknown = set(data) - _KNOWN
        if unknown:
            raise ConfigError(
                f"config file {path} has unknown keys {sorted(unknown)}; known keys are {sorted(_KNOWN)}"
            )
        for key, value in data.items():
            if not isinstance(value, str):
                raise ConfigError(f"config file {path}: {key!r} must be a string, got {type(value).__name__}")
    return Settings(
        model=os.environ.get("POLYMODAL_MODEL") or data.get("model"),
        device=os.environ.get("POLYMODAL_DEVICE") or data.get("device"),
        library=os.environ.get("POLYMODAL_LIBRARY") or data.get("library"),
        source=path if path.exists() else None,
    )
