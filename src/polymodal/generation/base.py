"""The one generator interface, and the checks every backend shares.

A backend implements the least it can: its recommended settings (``defaults``), the checks only it can make
(``check``: sizes it can draw, how its tokenizer cuts a prompt) and ``make``, which turns one resolved
request into candidate images. Seeding, scoring, reranking and saving are derived in ``polymodal.generation.api``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable

from polymodal.errors import InputError
from polymodal.generation.types import Candidate, GenerationRequest, Settings

#: called as work is done with (units done, units in all): denoising steps locally, images for providers
ProgressCallback = Callable[[int, int], None]

#: the largest side any backend is asked for; past this a latent pipeline needs tens of GiB and draws tiles
MAX_SIDE = 4096


def parse_size(size: str | int | tuple[int, int]) -> tuple[int, int]:
    """``"512x768"`` (width x height), ``"512"`` or ``512`` (square), or a (width, height) pair."""
    if isinstance(size, tuple):
        w, h = size
    elif isinstance(size, int):
        w = h = size
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(?:[x×X*]\s*(\d+))?\s*", str(size))
        if not m:
            raise InputError(f"size {size!r} is not WIDTHxHEIGHT (e.g. 512x512) or one number for a square")
        w = int(m.group(1))
        h = int(m.group(2) or m.group(1))
    if w <= 0 or h <= 0:
        raise InputError(f"size {w}x{h}: width and height must be positive")
    if max(w, h) > MAX_SIDE:
        raise InputError(f"size {w}x{h} is larger than {MAX_SIDE} pixels on a side, which no supported model draws")
    return int(w), int(h)


def check_prompt(prompt: str, what: str = "prompt") -> str:
    if not isinstance(prompt, str):
        raise InputError(f"{what} must be text, got {type(prompt).__name__}")
    if not prompt.strip():
        raise InputError(f"empty {what}: describe the image to generate")
    return prompt


class Generator(ABC):
    """A text-to-image model, local or remote."""

    #: registry scheme of the backend
    backend: str = "base"
    #: whether ``seed`` makes the output reproducible (remote APIs take no seed)
    seedable: bool = True
    #: candidates made when the caller does not say; remote backends default to 1 because each image costs money
    default_n: int = 4

    def __init__(self, name: str) -> None:
        self.name = name  # the spec it was loaded from, recorded with every image

    @abstractmethod
    def defaults(self) -> Settings:
        """The model's recommended steps, guidance and size."""

    def check(self, request: GenerationRequest) -> str | None:
        """Refuse what this model cannot do, before any work. Returns the prompt as the model will read it
        when it had to be cut (``request.truncate``), else None."""
        return None

    @abstractmethod
    def make(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> list[Candidate]:
        """Make ``request.n`` candidates; candidate i uses seed ``request.seed + i`` where seeds apply."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
