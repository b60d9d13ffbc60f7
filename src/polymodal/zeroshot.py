"""Matching images to texts and zero-shot classification with prompt ensembles (Radford et al. 2021, §3.1.4)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from polymodal.errors import InputError
from polymodal.media.images import describe_input
from polymodal.models.base import Encoder, ImageInput


@dataclass(frozen=True)
class MatchResult:
    similarity: np.ndarray  # (images, texts) cosine similarities
    probs: np.ndarray  # (images, texts) softmax over texts of logit_scale * similarity (sigmoid for SigLIP)


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float  # probability among the given labels


@dataclass(frozen=True)
class Classification:
    source: str  # the image as given (path, or a short description of bytes / PIL input)
    labels: list[LabelScore]  # best first


@cache
def _bundled_templates() -> dict[str, list[str]]:
    text = resources.files("polymodal.data").joinpath("templates.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def template_sets() -> list[str]:
    return sorted(_bundled_templates())


def get_templates(templates: str | Sequence[str] | None) -> list[str]:
    """``"openai"`` (80 templates), ``"simple"`` (7), a file with one template per line, or a list.

    Each template holds ``{}`` where the label goes.
    """
    if templates is None:
        templates = "openai"
    if isinstance(templates, str):
        bundled = _bundled_templates()
        if templates in bundled:
            out = list(bundled[templates])
        else:
            path = Path(templates).expanduser()
            if not path.is_file():
                raise InputError(
                    f"templates {templates!r} is neither a bundled set ({', '.join(bundled)}) nor a file"
                )
            out = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        out = list(templates)
    if not out:
        raise InputError("the template list is empty; give at least one template such as 'a photo of a {}.'")
    for t in out:
        if "{}" not in t:
            raise InputError(f"template {t!r} has no '{{}}' where the label should go")
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def probabilities(model: Encoder, similarity: np.ndarray) -> np.ndarray:
    logits = model.logit_scale * similarity
    if model.logit_bias is not None:
        # Sigmoid-trained models score each pair independently (Zhai et al. 2023, SigLIP).
        return 1.0 / (1.0 + np.exp(-(logits + model.logit_bias)))
    return _softmax(logits) if similarity.shape[1] else similarity


def match(
    images: Sequence[ImageInput], texts: Sequence[str], model: Encoder | str | None = None, *, truncate: bool = False
) -> MatchResult:
    """Cosine similarity of every image to every text, and probabilities over the texts per image."""
    enc = _encoder(model)
    if not texts:
        raise InputError("match needs at least one text")
    sim = enc.encode_images(images) @ enc.encode_texts(list(texts), truncate=truncate).T
    return MatchResult(sim, probabilities(enc, sim))


def label_embeddings(
    model: Encoder, labels: Sequence[str], templates: str | Sequence[str] | None = None, *, truncate: bool = False
) -> np.ndarray:
    """Prompt ensemble: per label, the mean of its normalised template embeddings, re-normalised.

    With an exported model (which names what its text embeddings depend on) the result is cached on disk:
    80 prompts per label cost a second or more on a CPU, and the same labels come back command after command.
    """
    temps = get_templates(templates)
    prompts = [t.format(label) for label in labels for t in temps]
    path = _label_cache(model, prompts, truncate)
    if path is not None:
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(labels), model.dim):
                return cached
        except (OSError, ValueError):
            pass  # absent or damaged: computed below
    emb = model.encode_texts(prompts, truncate=truncate).reshape(len(labels), len(temps), -1).mean(axis=1)
    emb = (emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, emb)
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache costs only time
    return emb


def _label_cache(model: Encoder, prompts: list[str], truncate: bool) -> Path | None:
    identity = getattr(model, "text_identity", None)
    if not isinstance(identity, str):
        return None
    import hashlib

    from polymodal.paths import cache_dir

    key = hashlib.blake2b(json.dumps([prompts, truncate]).encode(), digest_size=16).hexdigest()
    return cache_dir() / "labels" / identity / f"{key}.npy"


def clean_labels(labels: Sequence[str]) -> list[str]:
    out = [label.strip() for label in labels if label.strip()]
    if not out:
        raise InputError("the label list is empty; give at least one label, e.g. --labels cat,dog")
    dupes = sorted({x for x in out if out.count(x) > 1})
    if dupes:
        raise InputError(f"labels must be distinct; repeated: {', '.join(dupes)}")
    return out


def classify(
    images: Sequence[ImageInput],
    labels: Sequence[str],
    model: Encoder | str | None = None,
    *,
    templates: str | Sequence[str] | None = None,
    top: int | None = None,
    truncate: bool = False,
) -> list[Classification]:
    """Zero-shot classification: one Classification per image, labels sorted by probability."""
    enc = _encoder(model)
    labels = clean_labels(labels)
    if top is not None and top < 1:
        raise InputError(f"top must be at least 1, got {top}")
    classes = label_embeddings(enc, labels, templates, truncate=truncate)
    images = list(images)
    probs = probabilities(enc, enc.encode_images(images) @ classes.T)
    out = []
    for item, row in zip(images, probs):
        order = np.argsort(-row)[: top or len(labels)]
        out.append(Classification(describe_input(item), [LabelScore(labels[i], float(row[i])) for i in order]))
    return out


def _encoder(model: Encoder | str | None) -> Encoder:
    if isinstance(model, Encoder):
        return model
    from polymodal.models import load_model

    return load_model(model)
