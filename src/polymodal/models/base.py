"""The one encoder interface.

A backend implements the least it can: how to turn a decoded PIL image into its model input
(``preprocess_image``), how to embed a batch of those (``_embed_image_batch``) and how to embed a batch of
texts (``_embed_text_batch``). This base derives the rest: accepting paths, bytes or PIL images, batching,
progress, L2 normalisation, float32 output, empty inputs and error messages that name the input.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from polymodal.errors import InputError
from polymodal.media.images import describe_input, load_image  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from PIL import Image

ImageInput = Union[str, "os.PathLike[str]", bytes, "Image.Image"]
#: called after each batch with (items done, items in all)
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder is, as plain data (for ``polymodal models``, libraries that record their model, ...)."""

    name: str  # the spec it was loaded from, e.g. "lite" or "hf:openai/clip-vit-base-patch32"
    backend: str  # registry scheme: lite, hf, open_clip, ...
    dim: int  # embedding width
    logit_scale: float  # multiply cosine similarities by this before a softmax
    logit_bias: float | None  # SigLIP-style models add this and use a sigmoid
    context_length: int | None  # longest text in tokens, None when unbounded
    modalities: tuple[str, ...] = ("image", "text")
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)  # backend details (architecture, temperature, ...)


def resolve_device(device: str | None) -> str:
    """``None``/"auto" picks cuda, then mps, then cpu; an explicit device must exist."""
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    assert device is not None
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for, but no CUDA device is available; use --device cpu")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {device!r} was asked for, but MPS is not available; use --device cpu")
    if kind not in ("cpu", "cuda", "mps"):
        raise InputError(f"unknown device {device!r}; use one of auto, cpu, cuda, cuda:N, mps")
    return device


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # A zero vector has no direction; leave it zero rather than dividing by zero into NaN.
    return x / np.maximum(norms, 1e-12)


class Encoder(ABC):
    """A CLIP-style dual encoder. Embeddings are float32, L2-normalised, shape (N, dim)."""

    #: registry scheme of the backend
    backend: str = "base"
    #: default batch size; backends with big towers may lower it
    default_batch_size: int = 32

    def __init__(self, name: str, device: str | None = None, batch_size: int | None = None) -> None:
        self.name = name
        self.device = resolve_device(device)
        self.batch_size = int(batch_size or self.default_batch_size)
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")

    # --- what a backend implements -------------------------------------------------------------------------
    @property
    @abstractmethod
    def dim(self) -> int:
        """Embedding width."""

    @property
    def logit_scale(self) -> float:
        """Temperature inverse applied to cosine similarities (CLIP: exp of the learned parameter)."""
        return 100.0

    @property
    def logit_bias(self) -> float | None:
        """Bias of sigmoid-trained models (SigLIP); None for softmax-trained ones."""
        return None

    @property
    def context_length(self) -> int | None:
        return None

    @abstractmethod
    def preprocess_image(self, image: Image.Image) -> Any:
        """Turn one decoded RGB image into this model's input (usually a CHW float tensor)."""

    @abstractmethod
    def _embed_image_batch(self, batch: list[Any]) -> np.ndarray:
        """Embed preprocessed images; any scale, the base normalises."""

    @abstractmethod
    def _embed_text_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        """Embed texts; raise TextTooLongError for an over-long text unless ``truncate``."""

    # --- derived ----------------------------------------------------------------------------------------------
    @property
    def supports(self) -> tuple[str, ...]:
        return ("image", "text")

    @property
    def info(self) -> EncoderInfo:
        return EncoderInfo(
            name=self.name,
            backend=self.backend,
            dim=self.dim,
            logit_scale=float(self.logit_scale),
            logit_bias=None if self.logit_bias is None else float(self.logit_bias),
            context_length=self.context_length,
            modalities=self.supports,
            device=self.device,
        )

    def load_image(self, item: ImageInput) -> Image.Image:
        """Decode one input to an RGB PIL image with EXIF orientation applied."""
        return load_image(item)

    def encode_images(
        self,
        items: Iterable[ImageInput],
        *,
        batch_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Embed images given as paths, bytes or PIL images. Fails on the first unreadable one, naming it."""
        items = list(items)
        size = int(batch_size or self.batch_size)
        out: list[np.ndarray] = []
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            batch = [self.preprocess_image(self.load_image(item)) for item in chunk]
            out.append(self._embed_image_batch(batch))
            if progress is not None:
                progress(min(start + size, len(items)), len(items))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.concatenate(out, axis=0))

    def encode_texts(
        self,
        texts: Sequence[str] | str,
        *,
        batch_size: int | None = None,
        truncate: bool = False,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Embed texts. A text longer than the context raises TextTooLongError unless ``truncate``."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for t in texts:
            if not isinstance(t, str):
                raise InputError(f"text inputs must be strings, got {type(t).__name__}: {t!r}")
        size = int(batch_size or self.batch_size)
        out: list[np.ndarray] = []
        for start in range(0, len(texts), size):
            out.append(self._embed_text_batch(texts[start : start + size], truncate))
            if progress is not None:
                progress(min(start + size, len(texts)), len(texts))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.concatenate(out, axis=0))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} dim={self.dim} device={self.device}>"
