"""Evaluating generated images: CLIPScore against their prompts, diversity per prompt, FID/KID to a reference.

The metrics are polymodal.generation.metrics (the ones ``polymodal generate`` ranks with and ``polymodal
fid`` prints); this module only gathers the data and embeds it once per model, through the evaluation's
embedding cache. Every number names the encoder it was computed with: CLIPScore under ``lite`` and under a
CLIP ViT-B/32 are different scales, and FID/KID are only comparable under the same feature extractor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import InputError
from polymodal.eval.embed import Progress, embed_images, embed_texts
from polymodal.models.base import Encoder


@dataclass(frozen=True)
class GeneratedSet:
    images: list[Path]
    prompts: list[str]  # one per image
    name: str


@dataclass
class GenerationResult:
    model: str  # the encoder: CLIPScore's judge and FID/KID's feature extractor
    dataset: str
    images: int
    prompts: int  # distinct prompts
    clip_score: dict[str, float]  # {"mean", "std", "min", "max"} of 2.5·max(cos, 0)
    per_image: list[float] = field(default_factory=list)  # CLIPScore of each image, in dataset order
    per_prompt: dict[str, float] = field(default_factory=dict)  # mean CLIPScore of each prompt's images
    diversity: float | None = None  # mean over prompts with ≥ 2 images of their mean pairwise (1 − cos)
    diversity_prompts: int = 0  # how many prompts that mean is over
    reference: str | None = None  # the reference folder of FID/KID
    reference_images: int = 0
    fid: float | None = None
    kid: dict[str, float] | None = None  # {"mean", "std"} of MMD² over subsets
    feature_dim: int = 0
    embedded: int = 0  # images computed (the rest came from the cache)

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "images": self.images, "prompts": self.prompts,
                "clip_score": self.clip_score, "diversity": self.diversity,
                "diversity_prompts": self.diversity_prompts, "fid": self.fid, "kid": self.kid,
                "extractor": self.model, "feature_dim": self.feature_dim, "reference": self.reference,
                "reference_images": self.reference_images}


def _prompt_of(path: Path) -> str | None:
    from polymodal.generation.provenance import read_provenance

    try:
        record = read_provenance(path)
    except (OSError, ValueError) as exc:  # not an image (PIL), or a broken provenance chunk (JSON)
        raise InputError(f"cannot read generated image {path}: {exc}") from None
    prompt = record.get("prompt")
    return prompt.strip() if isinstance(prompt, str) and prompt.strip() else None


def load_generated_folder(folder: Path) -> GeneratedSet:
    """Images saved by ``polymodal generate``: each PNG carries its prompt in a text chunk."""
    from polymodal.generation.metrics import images_in

    images = images_in(folder)
    prompts = [_prompt_of(p) for p in images]
    missing = [str(p) for p, q in zip(images, prompts) if q is None]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{folder}: {len(missing)} image(s) carry no prompt (not saved by `polymodal generate`): "
                         f"{shown}; list images with their prompts in a JSONL of {{\"image\", \"prompt\"}} instead")
    return GeneratedSet(images, [q for q in prompts if q is not None], folder.name)


def load_generated_jsonl(path: Path) -> GeneratedSet:
    """Rows ``{"image": PATH, "prompt": TEXT}``, paths relative to the file."""
    images: list[Path] = []
    prompts: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{path}:{n}: not JSON: {exc}") from None
        if not isinstance(row, dict) or not row.get("image") or not str(row.get("prompt", "")).strip():
            raise InputError(f"{path}:{n}: a row needs non-empty 'image' and 'prompt' fields")
        images.append((path.parent / str(row["image"])).resolve())
        prompts.append(str(row["prompt"]).strip())
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise InputError(f"{path}: {len(missing)} image(s) not found: {', '.join(missing[:5])}")
    if not images:
        raise InputError(f"{path}: no (image, prompt) rows")
    return GeneratedSet(images, prompts, path.stem)


def load_generated(path: str | Path) -> GeneratedSet:
    p = Path(path).expanduser()
    if p.is_dir():
        return load_generated_folder(p)
    if p.is_file() and p.suffix.lower() == ".jsonl":
        return load_generated_jsonl(p)
    if not p.exists():
        raise InputError(f"dataset {path} does not exist")
    raise InputError(f"dataset {path}: use a folder of images saved by `polymodal generate`, or a .jsonl of "
                     "{\"image\", \"prompt\"} rows")


def evaluate_generation(data: GeneratedSet, encoder: Encoder, reference: str | Path | None = None, *,
                        kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0,
                        progress: Progress | None = None) -> GenerationResult:
    """CLIPScore and diversity of ``data`` under ``encoder``; FID and KID against ``reference`` when given."""
    from polymodal.generation.metrics import clip_score, compare_features, diversity, images_in

    ref_images = images_in(reference) if reference is not None else []  # fail before any embedding work
    if reference is not None and (len(data.images) < 2 or len(ref_images) < 2):
        raise InputError(f"FID/KID need at least 2 images on each side, got {len(data.images)} generated and "
                         f"{len(ref_images)} in {reference}")
    img, computed = embed_images(encoder, data.images, progress)
    distinct = list(dict.fromkeys(data.prompts))
    txt = embed_texts(encoder, distinct)  # truncated to the encoder's context, as generate scores them
    row = {p: i for i, p in enumerate(distinct)}
    scores = clip_score(img, txt[[row[p] for p in data.prompts]])
    groups = [np.flatnonzero(np.asarray([q == p for q in data.prompts])) for p in distinct]
    spreads = [diversity(img[g]) for g in groups if len(g) >= 2]
    result = GenerationResult(
        model=encoder.name, dataset=data.name, images=len(data.images), prompts=len(distinct),
        clip_score={"mean": float(scores.mean()), "std": float(scores.std()), "min": float(scores.min()),
                    "max": float(scores.max())},
        per_image=[float(s) for s in scores],
        per_prompt={p: float(scores[g].mean()) for p, g in zip(distinct, groups)},
        diversity=float(np.mean(spreads)) if spreads else None, diversity_prompts=len(spreads),
        feature_dim=int(img.shape[1]), embedded=computed,
    )
    if reference is not None:
        ref, more = embed_images(encoder, ref_images, progress)
        cmp = compare_features(img, ref, encoder.name, data.name, str(reference), subsets=kid_subsets,
                               subset_size=kid_subset_size, seed=seed)
        result.reference, result.reference_images = str(reference), len(ref_images)
        result.fid, result.kid = cmp.fid, {"mean": cmp.kid, "std": cmp.kid_std}
        result.embedded += more
    return result
