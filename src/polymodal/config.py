"""User settings: the config file, overridden by environment variables, overridden by explicit arguments.

The OpenAI-compatible provider's settings follow the official ``openai`` client: ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL`` win over the config file's ``openai_api_key`` / ``openai_base_url``, so a shell that
already works with the client works with polymodal unchanged.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.errors import ConfigError
from polymodal.paths import config_file


@dataclass(frozen=True)
class Settings:
    model: str | None = None  # model spec; None means the built-in default
    device: str | None = None  # auto, cpu, cuda, mps
    library: str | None = None  # library directory
    generator: str | None = None  # default generator spec of `polymodal generate` and `polymodal serve`
    openai_base_url: str | None = None  # an OpenAI-compatible API (default: the official client's)
    # a secret: kept out of repr (and so out of logs and tracebacks that show the settings)
    openai_api_key: str | None = field(default=None, repr=False)
    source: Path | None = None  # the config file these came from, when there was one

    def __repr__(self) -> str:
        key = "None" if self.openai_api_key is None else "'***'"
        return (f"Settings(model={self.model!r}, device={self.device!r}, library={self.library!r}, "
                f"generator={self.generator!r}, openai_base_url={self.openai_base_url!r}, "
                f"openai_api_key={key}, source={self.source!r})")


#: config key -> environment variable that overrides it
_ENV = {
    "model": "POLYMODAL_MODEL",
    "device": "POLYMODAL_DEVICE",
    "library": "POLYMODAL_LIBRARY",
    "generator": "POLYMODAL_GENERATOR",
    "openai_base_url": "OPENAI_BASE_URL",
    "openai_api_key": "OPENAI_API_KEY",
}
_KNOWN = set(_ENV)


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
                # the value itself is not shown: it may be the API key
                raise ConfigError(f"config file {path}: {key!r} must be a string, got {type(value).__name__}")
    values = {key: os.environ.get(env) or data.get(key) or None for key, env in _ENV.items()}
    return Settings(**values, source=path if path.exists() else None)
