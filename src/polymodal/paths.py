"""Where polymodal keeps its files: config, cache and default library, per the platform's conventions.

Each can be moved with an environment variable, which the tests use to stay inside temporary directories.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "polymodal"


def config_file() -> Path:
    """``POLYMODAL_CONFIG``, else ``<user config dir>/polymodal/config.toml`` (XDG on Linux)."""
    env = os.environ.get("POLYMODAL_CONFIG")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP)) / "config.toml"


def cache_dir() -> Path:
    """``POLYMODAL_CACHE_DIR``, else the user cache dir. Holds derived data that can always be rebuilt."""
    env = os.environ.get("POLYMODAL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP))


def data_dir() -> Path:
    """The user data dir: the default home of a library."""
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP))
