"""Frozen-encoder features of dataset rows, cached on disk by (model, content hash).

The encoders are frozen during fusion training, so a feature depends only on the model and the bytes of
the input; caching on exactly that key makes a second run (another fusion, another seed, ``--compare``)
skip encoding entirely, and makes a renamed file a cache hit while an edited one is a miss.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from polymodal.errors import ImageDecodeError, InputError, MediaDecodeError
from polymodal.fusion.data import BadRow, Row

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

Progress = Callable[[int, int], None]


@dataclass
class FeatureSet:
    """Features of N rows: one (N, D_m) array per modality (zeros where missing) and the presence mask."""

    modalities: tuple[str, ...]
    features: list[np.ndarray]
    present: np.ndarray  # (N, M) bool
    labels: np.ndarray | None = None  # (N,) int64 class indices, when known

    def __len__(self) -> int:
        return int(self.present.shape[0])

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(int(f.shape[1]) for f in self.features)

    def subset(self, idx: np.ndarray | list[int]) -> FeatureSet:
        idx = np.asarray(idx, dtype=np.int64)
        labels = None if self.labels is None else self.labels[idx]
        return FeatureSet(self.modalities, [f[idx] for f in self.features], self.present[idx], labels)

    def without(self, modality: str) -> FeatureSet:
        """The same rows with one modality missing everywhere (to test what masking does)."""
        m = self.modalities.index(modality)
        feats = [np.zeros_like(f) if i == m else f for i, f in enumerate(self.features)]
        present = self.present.copy()
        present[:, m] = False
        return FeatureSet(self.modalities, feats, present, self.labels)


@dataclass(frozen=True)
class CacheStats:
    encoded: int  # inputs run through the encoder
    cached: int  # inputs read from the cache


def model_key(encoder: Encoder) -> str:
    """Names the encoder's feature space: backend, spec and width, plus a fingerprint of a local directory's
    files, so a model fine-tuned again into the same directory does not reuse stale features."""
    info = encoder.info
    parts = [info.backend, info.name, str(info.dim)]
    path = Path(info.name).expanduser()
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.is_file():
                st = f.stat()
                parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def content_hash(modality: str, value: str) -> str:
    h = hashlib.sha256(modality.encode() + b"\0")
    if modality == "text":
        h.update(value.encode("utf-8"))
    else:
        with open(value, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


class FeatureCache:
    """One .npy per (model, input) under ``<cache>/features/<model key>/``; writes are atomic renames."""

    def __init__(self, encoder: Encoder, root: Path | None = None) -> None:
        from polymodal.paths import cache_dir

        self.dir = (root or cache_dir() / "features") / model_key(encoder)
        self.dim = encoder.dim

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        p = self._path(key)
        if not p.is_file():
            return None
        try:
            v = np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed
        return v.astype(np.float32) if v.shape == (self.dim,) else None

    def put(self, key: str, vec: np.ndarray) -> None:
        p = self._path(key)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f"{p.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, np.asarray(vec, dtype=np.float32))
            tmp.replace(p)
        except OSError:
            pass  # a read-only cache only costs time


def encode_rows(
    rows: list[Row],
    modalities: tuple[str, ...],
    encoder: Encoder,
    *,
    skip_bad: bool = False,
    progress: Progress | None = None,
    cache: FeatureCache | None = None,
    source: str = "the data",
) -> tuple[FeatureSet, CacheStats, list[int], list[BadRow]]:
    """Features for ``rows``; returns them with cache stats, the indices of the rows kept, and bad rows."""
    cache = cache or FeatureCache(encoder)
    n, dim = len(rows), encoder.dim
    feats = [np.zeros((n, dim), dtype=np.float32) for _ in modalities]
    present = np.zeros((n, len(modalities)), dtype=bool)
    todo: dict[str, list[tuple[int, str, str]]] = {m: [] for m in modalities}  # (row index, value, hash)
    bad: dict[int, str] = {}
    cached = 0
    for i, row in enumerate(rows):
        for m, value in row.values.items():
            if m not in modalities:
                continue
            try:
                key = content_hash(m, value)
            except OSError as exc:
                bad[i] = f"line {row.line} of {source}: cannot read {m} file {value}: {exc.strerror}"
                continue
            hit = cache.get(key)
            if hit is None:
                todo[m].append((i, value, key))
            else:
                feats[modalities.index(m)][i] = hit
                present[i, modalities.index(m)] = True
                cached += 1
    total = sum(len(v) for v in todo.values())
    done = 0
    for m, items in todo.items():
        j = modalities.index(m)
        step = max(1, encoder.batch_size)
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            vecs = _encode_chunk(encoder, m, chunk, rows, bad, skip_bad, source)
            for (i, _, key), vec in zip(chunk, vecs):
                if vec is None:
                    continue
                feats[j][i] = vec
                present[i, j] = True
                cache.put(key, vec)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    if bad and not skip_bad:
        first = min(bad)
        raise InputError(bad[first])
    kept = [i for i in range(n) if i not in bad]
    fs = FeatureSet(modalities, [f[kept] for f in feats], present[kept])
    bad_rows = [BadRow(rows[i].line, reason) for i, reason in sorted(bad.items())]
    return fs, CacheStats(encoded=total, cached=cached), kept, bad_rows


def _encode_chunk(
    encoder: Encoder,
    modality: str,
    chunk: list[tuple[int, str, str]],
    rows: list[Row],
    bad: dict[int, str],
    skip_bad: bool,
    source: str,
) -> list[np.ndarray | None]:
    values = [v for _, v, _ in chunk]
    if modality in ("video", "audio"):
        out_media: list[np.ndarray | None] = []
        for i, v, _ in chunk:  # one file at a time: each is decoded in its own time-limited child process
            try:
                out_media.append(media_feature(encoder, modality, v))
            except MediaDecodeError as exc:
                if not skip_bad:
                    raise InputError(f"line {rows[i].line} of {source}: {exc}") from None
                bad[i] = f"line {rows[i].line} of {source}: {exc}"
                out_media.append(None)
        return out_media
    if modality == "text":
        # Training texts are cut to the model's context, as in CLIP's own training, rather than failing.
        return list(encoder.encode_texts(values, truncate=True))
    try:
        return list(encoder.encode_images(values))
    except ImageDecodeError as exc:
        if not skip_bad:
            line = next((rows[i].line for i, v, _ in chunk if v == exc.source), rows[chunk[0][0]].line)
            raise InputError(f"line {line} of {source}: {exc}") from None
    out: list[np.ndarray | None] = []
    for i, v, _ in chunk:  # find the bad ones one at a time; the rest still count
        try:
            out.append(encoder.encode_images([v])[0])
        except ImageDecodeError as exc:
            bad[i] = f"line {rows[i].line} of {source}: {exc}"
            out.append(None)
    return out


def media_feature(encoder: Encoder, modality: str, path: str) -> np.ndarray | None:
    """One feature for a whole video or audio file, in the encoder's space.

    video: the normalised mean of the normalised embeddings of frames sampled across its shots (CLIP4Clip's
    meanP, the same pooling the library uses per segment, here over the whole clip).
    audio: what is said in it — the transcript embedded with the text tower, since no tower of the offline
    model set hears sound itself. A file with no speech has no audio feature (None: the modality is masked
    as missing for that row, which the fusions handle), not a zero vector that would read as evidence.
    """
    if modality == "video":
        from polymodal.library.media_ingest import embed_frames
        from polymodal.media.video import analyse_video
        from polymodal.models.base import normalise

        frames = [frame for segment in analyse_video(path).segments for frame in segment.frames]
        if not frames:
            raise MediaDecodeError(path, "no frame could be sampled from the video")
        return normalise(embed_frames(encoder, frames).mean(axis=0))
    from polymodal.speech import transcribe

    text = " ".join(s.text.strip() for s in transcribe(path).segments).strip()
    if not text:
        return None
    return encoder.encode_texts([text], truncate=True)[0]


def row_modalities(encoder: Encoder) -> tuple[str, ...]:
    """The row fields an encoder can turn into features: its own towers' modalities, plus video through the
    image tower (sampled frames) and audio through the text tower (the transcript)."""
    own = set(encoder.supports)
    derived = {"video"} if "image" in own else set()
    derived |= {"audio"} if "text" in own else set()
    return tuple(m for m in ("image", "text", "audio", "video") if m in own | derived)
