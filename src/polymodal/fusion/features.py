"""Frozen-encoder features of dataset rows, cached on disk by (model, extractor, content hash).

The encoders are frozen during fusion training, so a feature depends only on the model, the extractor
(``fusion.extract``) and the bytes of the input; caching on exactly that key makes a second run (another
fusion, another seed, ``--compare``) skip encoding entirely, and makes a renamed file a cache hit while an
edited one is a miss.

Token sequences are large (lite: 49 x 1280 per image), so they are cached as float16 and gathered for a data
set into one memory-mapped float16 array that the trainer reads a batch at a time: thousands of rows never
have to fit in memory at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from polymodal.errors import ImageDecodeError, InputError, MediaDecodeError
from polymodal.fusion.data import BadRow, Row
from polymodal.fusion.extract import Extracted, Extractor, TokenLayout, extractor_for

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

Progress = Callable[[int, int], None]


@dataclass
class TokenSeq:
    """One modality's tokens for a set of rows, read lazily: ``values`` may be a float16 memory map.

    Row i of the set is ``values[rows[i]]``; a subset only re-indexes ``rows``, so splitting a memory-mapped
    set into train/val/test copies nothing.
    """

    values: np.ndarray  # (R, T, D) float16
    valid: np.ndarray  # (R, T) bool: real tokens (a shorter text is padded)
    layout: TokenLayout
    rows: np.ndarray  # (N,) int64 indices into values

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def subset(self, idx: np.ndarray) -> TokenSeq:
        return TokenSeq(self.values, self.valid, self.layout, self.rows[idx])

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 (B, T, D) tokens and their (B, T) validity for rows ``idx`` of this set."""
        r = self.rows[np.asarray(idx, dtype=np.int64)]
        order = np.argsort(r, kind="stable")  # a memory map reads fastest in file order
        vals = np.empty((len(r), *self.values.shape[1:]), dtype=np.float32)
        vals[order] = self.values[r[order]]
        return vals, self.valid[r]


@dataclass
class FeatureSet:
    """Features of N rows: one pooled (N, D_m) array per modality (zeros where missing), the presence mask,
    and, for feature kind "tokens", each modality's token sequence (None where its encoder has none)."""

    modalities: tuple[str, ...]
    features: list[np.ndarray]
    present: np.ndarray  # (N, M) bool
    labels: np.ndarray | None = None  # (N,) int64 class indices, when known
    tokens: list[TokenSeq | None] | None = None  # per modality, for feature kind "tokens"
    notes: list[str] = field(default_factory=list)  # e.g. a modality that fell back to its pooled feature

    def __len__(self) -> int:
        return int(self.present.shape[0])

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(int(f.shape[1]) for f in self.features)

    @property
    def token_layouts(self) -> tuple[TokenLayout | None, ...]:
        return tuple(t.layout if t is not None else None for t in self.tokens or [])

    def subset(self, idx: np.ndarray | list[int]) -> FeatureSet:
        idx = np.asarray(idx, dtype=np.int64)
        labels = None if self.labels is None else self.labels[idx]
        tokens = None if self.tokens is None else [t.subset(idx) if t is not None else None for t in self.tokens]
        return FeatureSet(self.modalities, [f[idx] for f in self.features], self.present[idx], labels, tokens,
                          self.notes)

    def without(self, modality: str) -> FeatureSet:
        """The same rows with one modality missing everywhere (to test what masking does)."""
        m = self.modalities.index(modality)
        feats = [np.zeros_like(f) if i == m else f for i, f in enumerate(self.features)]
        present = self.present.copy()
        present[:, m] = False
        return FeatureSet(self.modalities, feats, present, self.labels, self.tokens, self.notes)


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
    """One .npy per (model, extractor, input) under ``<cache>/features/<model key>/[<extractor>/]``; writes are
    atomic renames. Tokens sit beside the pooled feature as float16 (``<key>.tok.npy``)."""

    def __init__(self, encoder: Encoder, root: Path | None = None, extractor: Extractor | None = None) -> None:
        from polymodal.paths import cache_dir

        self.extractor = extractor or extractor_for(encoder)
        base = (root or cache_dir() / "features") / model_key(encoder)
        # The plain embeddings keep the directory they always had, so caches made before extractors still hit.
        self.dir = base if self.extractor.name == "embedding" else base / self.extractor.name

    def _path(self, key: str, suffix: str = "") -> Path:
        return self.dir / key[:2] / f"{key}{suffix}.npy"

    def get(self, key: str, dim: int) -> np.ndarray | None:
        v = self._load(self._path(key))
        return v.astype(np.float32) if v is not None and v.shape == (dim,) else None

    def has_tokens(self, key: str) -> bool:
        return self._path(key, ".tok").is_file()

    def get_tokens(self, key: str, layout: TokenLayout) -> np.ndarray | None:
        v = self._load(self._path(key, ".tok"))
        if v is None or v.ndim != 2 or v.shape[1] != layout.dim or not 0 < v.shape[0] <= layout.count:
            return None  # a damaged or foreign entry is recomputed
        return v

    @staticmethod
    def _load(p: Path) -> np.ndarray | None:
        if not p.is_file():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed

    def put(self, key: str, features: Extracted) -> bool:
        """Store one input's features; False when the cache cannot be written (it only costs time)."""
        items = [("", np.asarray(features.pooled, dtype=np.float32))]
        if features.tokens is not None:
            items.append((".tok", np.asarray(features.tokens, dtype=np.float16)))
        try:
            for suffix, arr in items:
                p = self._path(key, suffix)
                p.parent.mkdir(parents=True, exist_ok=True)
                tmp = p.with_name(f"{p.stem}.{os.getpid()}.tmp.npy")
                np.save(tmp, arr)
                tmp.replace(p)
        except OSError:
            return False
        return True


def encode_rows(
    rows: list[Row],
    modalities: tuple[str, ...],
    encoder: Encoder,
    *,
    skip_bad: bool = False,
    progress: Progress | None = None,
    cache: FeatureCache | None = None,
    source: str = "the data",
    tokens: bool = False,
) -> tuple[FeatureSet, CacheStats, list[int], list[BadRow]]:
    """Features for ``rows``; returns them with cache stats, the indices of the rows kept, and bad rows.

    ``tokens``: also gather each modality's token sequence (feature kind "tokens"), where the extractor has
    one; a modality without tokens falls back to its pooled feature, with a note in ``FeatureSet.notes``.
    """
    cache = cache or FeatureCache(encoder)
    ex = cache.extractor
    n = len(rows)
    dims = [ex.pooled_dim(m) for m in modalities]
    layouts = [ex.token_layout(m) if tokens else None for m in modalities]
    feats = [np.zeros((n, d), dtype=np.float32) for d in dims]
    present = np.zeros((n, len(modalities)), dtype=bool)
    keys: list[list[str | None]] = [[None] * n for _ in modalities]
    fresh: dict[str, np.ndarray] = {}  # tokens the cache could not store, kept for this run
    todo: dict[str, list[tuple[int, str, str]]] = {m: [] for m in modalities}  # (row index, value, hash)
    bad: dict[int, str] = {}
    cached = 0
    for i, row in enumerate(rows):
        for m, value in row.values.items():
            if m not in modalities:
                continue
            j = modalities.index(m)
            try:
                key = content_hash(m, value)
            except OSError as exc:
                bad[i] = f"line {row.line} of {source}: cannot read {m} file {value}: {exc.strerror}"
                continue
            hit = cache.get(key, dims[j])
            if hit is None or (layouts[j] is not None and not cache.has_tokens(key)):
                todo[m].append((i, value, key))
            else:
                feats[j][i] = hit
                present[i, j] = True
                keys[j][i] = key
                cached += 1
    total = sum(len(v) for v in todo.values())
    done = 0
    for m, items in todo.items():
        j = modalities.index(m)
        step = max(1, encoder.batch_size)
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            outs = _encode_chunk(ex, m, chunk, rows, bad, skip_bad, source, layouts[j] is not None)
            for (i, _, key), out in zip(chunk, outs):
                if out is None:
                    continue
                feats[j][i] = out.pooled
                present[i, j] = True
                keys[j][i] = key
                if not cache.put(key, out) and out.tokens is not None:
                    fresh[key] = out.tokens
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    if bad and not skip_bad:
        first = min(bad)
        raise InputError(bad[first])
    kept = [i for i in range(n) if i not in bad]
    fs = FeatureSet(modalities, [f[kept] for f in feats], present[kept])
    if tokens:
        fs.tokens = []
        for j, m in enumerate(modalities):
            layout = layouts[j]
            if layout is None:
                fs.tokens.append(None)
                if present[kept, j].any():
                    fs.notes.append(f"{m}: {ex.describe().split(':')[0]} gives no tokens for {m}; hybrid fusion "
                                    "uses its pooled feature")
                continue
            fs.tokens.append(gather_tokens(cache, [keys[j][i] for i in kept], layout, fresh))
    bad_rows = [BadRow(rows[i].line, reason) for i, reason in sorted(bad.items())]
    return fs, CacheStats(encoded=total, cached=cached), kept, bad_rows


def gather_tokens(cache: FeatureCache, keys: list[str | None], layout: TokenLayout,
                  fresh: dict[str, np.ndarray] | None = None) -> TokenSeq:
    """The tokens of these inputs (None: missing) as one float16 memory map, written once per set of inputs.

    Rows are copied in one at a time, so memory holds one row, not the set; the map lives under the cache's
    ``sets/`` keyed by the inputs, so another run on the same data reads it without copying anything.
    """
    fresh = fresh or {}
    n, width = len(keys), layout.count
    digest = hashlib.sha256(("|".join(k or "-" for k in keys) + f"|{layout}").encode()).hexdigest()[:24]
    path = cache.dir / "sets" / f"{digest}.npy"
    vpath = path.with_name(f"{digest}.valid.npy")
    expected = (n, width, layout.dim)
    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
        valid = np.load(vpath, allow_pickle=False)
        if values.shape == expected and valid.shape == (n, width) and values.dtype == np.float16:
            return TokenSeq(values, valid, layout, np.arange(n, dtype=np.int64))
    except (OSError, ValueError):
        pass  # absent or damaged: written below
    valid = np.zeros((n, width), dtype=bool)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{digest}.{os.getpid()}.tmp.npy")
        out: np.ndarray = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=expected)
    except OSError:
        tmp, out = None, np.zeros(expected, dtype=np.float16)  # a read-only cache: in memory, this run only
    for i, key in enumerate(keys):
        if key is None:
            continue
        t = fresh.get(key)
        if t is None:
            t = cache.get_tokens(key, layout)
        if t is None:
            raise InputError(f"the cached tokens of an input vanished from {cache.dir}; run again")
        out[i, : len(t)] = t
        valid[i, : len(t)] = True
    if tmp is None:
        return TokenSeq(out, valid, layout, np.arange(n, dtype=np.int64))
    assert isinstance(out, np.memmap)
    out.flush()
    del out
    tmp.replace(path)
    vtmp = vpath.with_name(f"{digest}.valid.{os.getpid()}.tmp.npy")
    np.save(vtmp, valid)
    vtmp.replace(vpath)
    return TokenSeq(np.load(path, mmap_mode="r", allow_pickle=False), valid, layout, np.arange(n, dtype=np.int64))


def _encode_chunk(
    ex: Extractor,
    modality: str,
    chunk: list[tuple[int, str, str]],
    rows: list[Row],
    bad: dict[int, str],
    skip_bad: bool,
    source: str,
    tokens: bool,
) -> list[Extracted | None]:
    encoder = ex.encoder
    values = [v for _, v, _ in chunk]
    if modality in ("video", "audio"):
        out_media: list[Extracted | None] = []
        for i, v, _ in chunk:  # one file at a time: each is decoded in its own time-limited child process
            try:
                vec = media_feature(encoder, modality, v)
                out_media.append(None if vec is None else Extracted(vec))
            except MediaDecodeError as exc:
                if not skip_bad:
                    raise InputError(f"line {rows[i].line} of {source}: {exc}") from None
                bad[i] = f"line {rows[i].line} of {source}: {exc}"
                out_media.append(None)
        return out_media
    if modality == "text":
        # Training texts are cut to the model's context, as in CLIP's own training, rather than failing.
        return list(ex.extract("text", values, tokens))
    try:
        return list(ex.extract(modality, values, tokens))
    except ImageDecodeError as exc:
        if not skip_bad:
            line = next((rows[i].line for i, v, _ in chunk if v == exc.source), rows[chunk[0][0]].line)
            raise InputError(f"line {line} of {source}: {exc}") from None
    out: list[Extracted | None] = []
    for i, v, _ in chunk:  # find the bad ones one at a time; the rest still count
        try:
            out.append(ex.extract(modality, [v], tokens)[0])
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
