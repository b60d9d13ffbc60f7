"""Embeddings for evaluation, cached per (model, runtime, content hash) so re-evaluating embeds nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from polymodal.models.base import Encoder

Progress = Callable[[int, int], None]


def _cache(encoder: Encoder):
    from polymodal.fusion.extract import Extractor
    from polymodal.fusion.features import FeatureCache
    from polymodal.paths import cache_dir

    # int8 and fp32 embeddings differ: the runtime is part of the key, beside the model's own. Retrieval is
    # scored on the encoder's embeddings, whatever richer features fusion would extract from it.
    runtime = "-".join(f"{k}={v}" for k, v in sorted(encoder.runtimes.items())) or "default"
    return FeatureCache(encoder, cache_dir() / "eval-features" / runtime, extractor=Extractor(encoder))


def embed_images(encoder: Encoder, paths: list[Path], progress: Progress | None = None) -> tuple[np.ndarray, int]:
    """(embeddings, how many were computed rather than read from the cache)."""
    from polymodal.fusion.features import content_hash

    cache = _cache(encoder)
    keys = [content_hash("image", str(p)) for p in paths]
    out: list[np.ndarray | None] = [cache.get(k, encoder.dim) for k in keys]
    todo = [i for i, v in enumerate(out) if v is None]
    if todo:
        from polymodal.fusion.extract import Extracted

        fresh = encoder.encode_images([paths[i] for i in todo], progress=progress)
        for i, vec in zip(todo, fresh):
            cache.put(keys[i], Extracted(vec))
            out[i] = vec
    return np.stack([v for v in out if v is not None]).astype(np.float32), len(todo)


def embed_texts(encoder: Encoder, texts: list[str], truncate: bool = True) -> np.ndarray:
    """Captions are embedded fresh: they are cheap next to images, and a cache keyed on text adds little."""
    return encoder.encode_texts(texts, truncate=truncate)
