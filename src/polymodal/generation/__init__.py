"""Text-to-image generation reranked with CLIP: local diffusers pipelines or an OpenAI-compatible Images API.

    >>> import polymodal
    >>> best = polymodal.generate("a lighthouse at dusk", n=4, keep=1, out="out/")   # doctest: +SKIP
    >>> best[0].path, best[0].score, best[0].seed                                     # doctest: +SKIP

The package is ``polymodal.generation`` rather than ``polymodal.generate`` so that ``polymodal.generate`` can
be the function: importing a submodule binds its name on the parent package, which would replace the
function with the module the first time any part of the package was imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polymodal.generation.api import generate, load_generator, score
from polymodal.generation.base import Generator, parse_size
from polymodal.generation.registry import (
    DEFAULT_GENERATOR,
    GeneratorBackend,
    GeneratorEntry,
    GeneratorSpec,
    generator_backends,
    list_generators,
    parse_generator_spec,
    register_generator,
)
from polymodal.generation.types import Candidate, GeneratedImage, GenerationRequest, Settings


def _load_diffusers(spec: GeneratorSpec, device: str | None = None, **options: Any) -> Generator:
    from polymodal.generation import local

    return local.load(spec, device, **options)


def _detect_diffusers(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def _list_diffusers() -> list[GeneratorEntry]:
    from polymodal.generation import local

    return local.list_known()


def _load_openai(spec: GeneratorSpec, device: str | None = None, **options: Any) -> Generator:
    from polymodal.generation import provider

    return provider.load(spec, device, **options)


def _list_openai() -> list[GeneratorEntry]:
    from polymodal.generation import provider

    return provider.list_known()


# The built-ins come in through the same call a plugin uses.
register_generator(GeneratorBackend(
    "diffusers", "a diffusers text-to-image pipeline from the hub (cached) or a directory",
    ("diffusers:stabilityai/sd-turbo", "diffusers:/path/to/pipeline"), _load_diffusers, True, _detect_diffusers,
    _list_diffusers,
))
register_generator(GeneratorBackend(
    "openai", "an OpenAI-compatible Images API at $OPENAI_BASE_URL with $OPENAI_API_KEY",
    ("openai", "openai:dall-e-3", "openai:gpt-image-1"), _load_openai, False, None, _list_openai,
))

__all__ = [
    "DEFAULT_GENERATOR",
    "Candidate",
    "GeneratedImage",
    "GenerationRequest",
    "Generator",
    "GeneratorBackend",
    "GeneratorEntry",
    "GeneratorSpec",
    "Settings",
    "generate",
    "generator_backends",
    "list_generators",
    "load_generator",
    "parse_generator_spec",
    "parse_size",
    "register_generator",
    "score",
]
