"""``generate``: make N candidates, score each against the prompt with CLIPScore, keep the best K, save them.

This is DALL·E's recipe (Ramesh et al. 2021 sampled 512 images and kept those CLIP ranked highest) with any
local diffusers pipeline or OpenAI-compatible API as the sampler and polymodal's own encoder as the judge.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import TYPE_CHECKING, Any

from polymodal.errors import InputError
from polymodal.generation.base import Generator, ProgressCallback, check_prompt, parse_size
from polymodal.generation.metrics import clip_score, diversity
from polymodal.generation.registry import DEFAULT_GENERATOR, generator_backends, parse_generator_spec
from polymodal.generation.types import Candidate, GeneratedImage, GenerationRequest

if TYPE_CHECKING:
    import numpy as np

    from polymodal.models.base import Encoder

log = logging.getLogger("polymodal")

MAX_CANDIDATES = 256  # more than this is a job for a batch script, not one call


def load_generator(spec: str | None = None, *, device: str | None = None, **options: Any) -> Generator:
    """Load a generator by spec (default ``diffusers:stabilityai/sd-turbo``); ``options`` go to the backend
    (``batch_size`` locally; ``api_key``, ``base_url``, ``response_format``, ``max_retries`` for providers)."""
    if not spec:
        from polymodal.config import load_settings

        spec = load_settings().generator or DEFAULT_GENERATOR  # POLYMODAL_GENERATOR, else the config file's
    parsed = parse_generator_spec(spec)
    return generator_backends()[parsed.scheme].load(parsed, device=device, **options)


def score(images: list[Any], prompt: str, encoder: Encoder) -> np.ndarray:
    """CLIPScore of each image against ``prompt`` under ``encoder``.

    The prompt is cut to the encoder's context for scoring only (CLIP reads 77 tokens, as the pipelines do).
    """
    return _score(images, prompt, encoder)[0]


def _score(images: list[Any], prompt: str, encoder: Encoder) -> tuple[np.ndarray, float]:
    img = encoder.encode_images(images)
    txt = encoder.encode_texts([prompt], truncate=True)
    return clip_score(img, txt), diversity(img)


def _refuse_unseedable(gen: Generator, **given: Any) -> None:
    for name, value in given.items():
        if value is not None:
            raise InputError(f"{gen.name} cannot take {name}: the Images API has no such parameter "
                             "(it samples on the server); leave it out")


def generate(
    prompt: str,
    *,
    n: int | None = None,
    keep: int | None = None,
    model: str | Generator | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    size: str | int | tuple[int, int] | None = None,
    seed: int | None = None,
    negative: str | None = None,
    out: str | os.PathLike[str] | None = None,
    encoder: str | Encoder | None = None,
    device: str | None = None,
    truncate: bool = False,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    """Generate ``n`` candidates for ``prompt``, keep the ``keep`` best by CLIPScore, best first.

    ``model``: a generator spec (``diffusers:<hub id or dir>``, a pipeline directory, ``openai:<model>``) or a
    loaded ``Generator``; default ``diffusers:stabilityai/sd-turbo`` at its recommended 1 step, guidance 0,
    512x512. ``n`` defaults to 4 locally and 1 for paid APIs; ``keep`` to 1. ``seed``: candidate i uses
    ``seed + i`` (a random seed is drawn and recorded when None). ``encoder``: the scoring encoder (spec or
    loaded), default the configured model. ``out``: save PNGs with provenance and JSON sidecars there.
    ``truncate``: generate from the part of an over-long prompt the model reads instead of refusing it.
    """
    check_prompt(prompt)
    if negative is not None and not negative.strip():
        negative = None
    # everything that needs no model is checked before one is loaded
    _check_count("n", n)
    _check_count("keep", keep)
    if n is not None and n > MAX_CANDIDATES:
        raise InputError(f"n={n} is more than {MAX_CANDIDATES} candidates in one call; generate in several calls")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**62):
        raise InputError(f"seed must be a whole number from 0 to 2^62, got {seed!r}")
    asked_size = parse_size(size) if size is not None else None
    if out is not None:
        from polymodal.generation.provenance import prepare_out

        prepare_out(out)  # a bad --out fails before minutes of compute, not after
    gen = model if isinstance(model, Generator) else load_generator(model, device=device, **options)
    if not gen.seedable:
        _refuse_unseedable(gen, seed=seed, steps=steps, guidance=guidance, negative=negative)
    n = gen.default_n if n is None else n
    keep = 1 if keep is None else keep
    if keep > n:
        raise InputError(f"keep={keep} is more than the n={n} candidates made; lower keep or raise n")
    ref = gen.defaults()
    width, height = asked_size or (ref.width, ref.height)
    if gen.seedable and seed is None:
        seed = secrets.randbelow(2**31)  # recorded, so even an unseeded image can be made again
    request = GenerationRequest(
        prompt=prompt, negative=negative, n=n, steps=ref.steps if steps is None else int(steps),
        guidance=ref.guidance if guidance is None else float(guidance), width=width, height=height, seed=seed,
        truncate=truncate,
    )
    prompt_used = gen.check(request)
    if out is not None:
        from polymodal.generation.provenance import check_space, prepare_out

        check_space(prepare_out(out), keep * (width * height * 3 + 4096))  # raw pixels bound a PNG from above
    enc = _encoder(encoder, device)
    candidates = gen.make(request, progress)
    if len(candidates) != n:
        from polymodal.errors import GenerationError

        raise GenerationError(f"{gen.name} made {len(candidates)} images where {n} were asked for")
    scores, spread = _score([c.image for c in candidates], prompt_used or prompt, enc)
    order = sorted(range(n), key=lambda i: -float(scores[i]))  # stable: ties keep generation order
    kept = [_result(candidates[i], float(scores[i]), rank, n, gen, request, enc.name, prompt_used)
            for rank, i in enumerate(order[:keep], start=1)]
    for image in kept:
        image.diversity = spread
    if out is not None:
        from polymodal.generation.provenance import save_images

        save_images(kept, out)
    return kept


def _check_count(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise InputError(f"{name} must be a whole number of at least 1, got {value!r}")


def _encoder(encoder: str | Encoder | None, device: str | None) -> Encoder:
    from polymodal.models import load_model
    from polymodal.models.base import Encoder

    if isinstance(encoder, Encoder):
        return encoder
    return load_model(encoder, device=device)


def _result(c: Candidate, value: float, rank: int, n: int, gen: Generator, req: GenerationRequest, scorer: str,
            prompt_used: str | None) -> GeneratedImage:
    return GeneratedImage(
        image=c.image, prompt=req.prompt, negative=req.negative, seed=c.seed, model=gen.name,
        steps=req.steps if gen.seedable else None, guidance=req.guidance if gen.seedable else None,
        width=c.image.width, height=c.image.height, score=value, scorer=scorer, rank=rank, candidates=n,
        revised_prompt=c.revised_prompt, prompt_used=prompt_used, extra=dict(c.extra),
    )
