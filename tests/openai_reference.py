"""OpenAI's own ``clip`` package (PyPI ``openai-clip``), the reference for the drop-in API.

Its ``clip/__init__`` imports ``pkg_resources``, which current setuptools no longer ships, so the two modules
we compare against (the model definition and the tokenizer) are loaded straight from their files.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def _load(name: str) -> ModuleType:
    spec = importlib.util.find_spec("clip")
    assert spec is not None and spec.submodule_search_locations, "openai-clip is a dev dependency"
    path = Path(next(iter(spec.submodule_search_locations))) / f"{name}.py"
    mod_spec = importlib.util.spec_from_file_location(f"openai_clip_{name}", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[mod_spec.name] = module
    mod_spec.loader.exec_module(module)
    return module


model = _load("model")
simple_tokenizer = _load("simple_tokenizer")
