"""polymodal: multimodal models on your own machine.

    >>> import polymodal
    >>> model = polymodal.load_model("lite")
    >>> polymodal.classify(["cat.jpg"], ["cat", "dog"], model)

Heavy parts (torch, transformers, open_clip) are imported only when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "polymodal.models",
    "list_models": "polymodal.models",
    "parse_spec": "polymodal.models",
    "register_backend": "polymodal.models",
    "Backend": "polymodal.models",
    "Encoder": "polymodal.models",
    "EncoderInfo": "polymodal.models",
    "ModelEntry": "polymodal.models",
    "match": "polymodal.zeroshot",
    "classify": "polymodal.zeroshot",
    "MatchResult": "polymodal.zeroshot",
    "Classification": "polymodal.zeroshot",
    "LabelScore": "polymodal.zeroshot",
    "clip": "polymodal.clip",
    "explain": "polymodal.explain",
    "generate": "polymodal.generation",
    "GeneratedImage": "polymodal.generation",
}

from polymodal.errors import (  # noqa: E402 - light, always available
    ImageDecodeError,
    InputError,
    MissingDependencyError,
    ModelLoadError,
    ModelSpecError,
    PolymodalError,
    TextTooLongError,
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = import_module(_LAZY[name])
        value = module if name == "clip" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'polymodal' has no attribute {name!r}")


__all__ = [
    "__version__",
    *_LAZY,
    "ImageDecodeError",
    "InputError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelSpecError",
    "PolymodalError",
    "TextTooLongError",
]
