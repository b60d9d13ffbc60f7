"""Plain data at the seams of generation: what is asked, what a backend returns, what the caller gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class Settings:
    """How a model is run when the caller does not say: a model's recommended sampling settings."""

    steps: int  # denoising steps (ignored by remote providers)
    guidance: float  # classifier-free guidance scale; 0 turns guidance (and the negative prompt) off
    width: int
    height: int


@dataclass(frozen=True)
class GenerationRequest:
    """One call to a backend, with every default already resolved."""

    prompt: str
    negative: str | None  # negative prompt; only used when guidance > 1 (what diffusers does)
    n: int  # candidates to make
    steps: int
    guidance: float
    width: int
    height: int
    seed: int | None  # first seed; candidate i uses seed + i. None: a random one is drawn and recorded
    truncate: bool = False  # cut an over-long prompt the way the model does instead of refusing it


@dataclass
class Candidate:
    """One image a backend made, before scoring."""

    image: Image.Image
    seed: int | None  # None where the backend cannot be seeded (remote APIs)
    revised_prompt: str | None = None  # what a provider says it actually drew from (DALL·E 3 rewrites prompts)
    extra: dict[str, Any] = field(default_factory=dict)  # backend details recorded in the provenance


@dataclass
class GeneratedImage:
    """A kept image with how it was made and how well it matches the prompt."""

    image: Image.Image
    prompt: str
    negative: str | None
    seed: int | None
    model: str  # the generator spec, e.g. "diffusers:stabilityai/sd-turbo" or "openai:dall-e-2"
    steps: int | None  # None for providers, whose sampling is not ours to set
    guidance: float | None
    width: int
    height: int
    score: float  # CLIPScore = 2.5 * max(cos, 0) under ``scorer`` (Hessel et al. 2021)
    scorer: str  # the encoder that scored it; scores are only comparable under the same one
    rank: int  # 1 = best of the candidates
    candidates: int  # how many were made to choose from
    diversity: float | None = None  # mean pairwise (1 - cos) of all candidates' embeddings under ``scorer``
    revised_prompt: str | None = None
    prompt_used: str | None = None  # the prompt after the model's truncation, when it was cut
    path: Path | None = None  # the PNG, once saved
    sidecar: Path | None = None  # the JSON beside it
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Everything recorded about the image, as JSON-ready data (no pixels)."""
        data: dict[str, Any] = {
            "prompt": self.prompt, "negative": self.negative, "seed": self.seed, "model": self.model,
            "steps": self.steps, "guidance": self.guidance, "width": self.width, "height": self.height,
            "score": self.score, "scorer": self.scorer, "rank": self.rank, "candidates": self.candidates,
            "diversity": self.diversity,
        }
        if self.revised_prompt is not None:
            data["revised_prompt"] = self.revised_prompt
        if self.prompt_used is not None:
            data["prompt_used"] = self.prompt_used
        if self.extra:
            data["extra"] = self.extra
        return data

    def to_dict(self) -> dict[str, Any]:
        """What ``--json`` prints: the path and score first, then the provenance."""
        return {"path": str(self.path) if self.path else None, **self.metadata()}
