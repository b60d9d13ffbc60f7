"""The one encoder interface.

A backend implements the least it can: how to turn a decoded PIL image into its model input
(``preprocess_image``), how to embed a batch of those (``_embed_image_batch``) and how to embed a batch of
texts (``_embed_text_batch``). This base derives the rest: accepting paths, bytes or PIL images, batching,
progress, L2 normalisation, float32 output, empty inputs and error messages that name the input.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
class Network:
    """One forward pass of a backend, as a torch module taking its named inputs in order.

    The runtime layer runs it in torch or exports it to ONNX (``polymodal.models.runtime``).
    """

    module: Any  # torch.nn.Module
    dynamic: dict[str, dict[int, str]]  # axes of each input that vary between calls (batch, sequence)


SAMPLE_TEXTS = tuple(
    f"{a} {b}" for a in ("a photo of", "a drawing of", "two", "a close-up of")
    for b in ("a cat", "a red car", "a cup of coffee", "a mountain lake", "a city street at night",
              "people at the beach", "a bowl of fruit", "an old bicycle")
)


def sample_images(n: int = 32) -> list[Any]:
    """Deterministic synthetic pictures (gradients, shapes) for checking exported networks against torch."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(1234)
    out = []
    for _ in range(n):
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0, 1, 96)[None, :, None]
        pixels = (a * (1 - ramp) + b * ramp).repeat(72, axis=0).astype(np.uint8)
        img = Image.fromarray(pixels)
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x, y = rng.integers(0, 80), rng.integers(0, 56)
            box = (int(x), int(y), int(x + rng.integers(8, 40)), int(y + rng.integers(8, 30)))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        out.append(img)
    return out


def real_photos() -> list[Any]:
    """Real photographs from an installed core dependency (matplotlib's sample data), each also cropped and
    mirrored: the export gate checks networks on real pictures, whose statistics synthetic ones lack."""
    from importlib.util import find_spec

    from PIL import Image, ImageOps

    spec = find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a core dependency
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "sample_data"
    out: list[Any] = []
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
        try:
            with Image.open(folder / name) as img:
                photo = img.convert("RGB")
        except OSError:
            continue
        w, h = photo.size
        crops = [(0, 0, w, h), (0, 0, w // 2, h // 2), (w // 2, h // 2, w, h), (w // 4, 0, 3 * w // 4, h // 2)]
        for box in crops:
            part = photo.crop(box)
            out += [part, ImageOps.mirror(part)]
    return out


def real_sentences(n: int = 32) -> list[str]:
    """Real sentences: ImageNet class definitions as timm ships them (every 31st class, deterministic)."""
    from polymodal.models.lite.imagenet import imagenet_classes

    try:
        classes = imagenet_classes()
    except (OSError, KeyError):  # pragma: no cover - timm is a core dependency
        return []
    return [c.definition for c in classes[::31] if c.definition][:n]


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


def _gpu_possible() -> bool:
    """Whether this machine could have a GPU torch would use, answered without importing torch (2-3 s):
    the device nodes of the NVIDIA, ROCm and WSL drivers, or an Apple silicon Mac (MPS)."""
    import platform

    if platform.system() == "Darwin":
        return platform.machine() == "arm64"
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg"))


def resolve_device(device: str | None) -> str:
    """``None``/"auto" picks cuda, then mps, then cpu; an explicit device must exist."""
    if device in (None, "", "auto"):
        if not _gpu_possible():
            return "cpu"
        import torch

        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    assert device is not None
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise InputError(f"unknown device {device!r}; use one of auto, cpu, cuda, cuda:N, mps")
    if kind == "cpu":
        return device
    import torch

    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for, but no CUDA device is available; use --device cpu")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {device!r} was asked for, but MPS is not available; use --device cpu")
    return device


def normalise(x: np.ndarray) -> np.ndarray:
    """Each embedding (the last axis) at unit length, as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
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
        self._networks: dict[str, Network] | None = None
        self._runners: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {}
        #: what each network runs on, e.g. {"image": "onnx-int8", "text": "torch"}
        self.runtimes: dict[str, str] = {}
        from polymodal.machine import thread_limit

        #: decoding threads that overlap with inference (0: decode on the calling thread); --threads caps them
        self.decode_workers = min(4, os.cpu_count() or 1, thread_limit() or 4)

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
        """Turn one decoded RGB image into this model's input: a CHW float32 tensor."""

    @property
    def input_size(self) -> int | None:
        """Side of the square the image network sees; lets JPEGs be decoded at reduced size."""
        return None

    # A backend either describes its networks (and gets torch/ONNX runtimes, batching and parity checks
    # from here) or overrides _embed_image_batch/_embed_text_batch directly (torch only).
    def build_networks(self) -> dict[str, Network]:
        """{"image": Network(...), "text": Network(...)}: the image network takes ``pixel_values``."""
        raise NotImplementedError

    def text_inputs(self, texts: list[str], truncate: bool) -> dict[str, np.ndarray]:
        """Tokenise: the text network's inputs by name, in the order it takes them.

        Raise TextTooLongError for an over-long text unless ``truncate``.
        """
        raise NotImplementedError

    def postprocess_image(self, output: np.ndarray) -> np.ndarray:
        """Map the image network's output to embeddings (identity for CLIP-style towers)."""
        return output

    def export_postprocess(self, folder: Path) -> dict[str, Any]:
        """How a bundle reproduces ``postprocess_image`` (``polymodal.models.bundle``), writing any arrays it
        needs into ``folder``. CLIP-style towers need nothing."""
        return {"kind": "identity"}

    def weights_identity(self) -> str:
        """What the export cache is keyed on; backends whose weights are files override this cheaply."""
        from polymodal.models.runtime import weights_digest

        h = [weights_digest(net.module) for net in self.networks().values()]
        return "+".join(h)

    def networks(self) -> dict[str, Network]:
        if self._networks is None:
            self._networks = self.build_networks()
        return self._networks

    def sample_inputs(self, network: str) -> dict[str, np.ndarray]:
        """Inputs for one network, for export and parity checks: synthetic pictures and short queries, plus
        real photos and real sentences."""
        if network == "image":
            images = [*sample_images(), *real_photos()]
            return {"pixel_values": np.stack([np.asarray(self.preprocess_image(i)) for i in images])}
        return self.text_inputs([*SAMPLE_TEXTS, *real_sentences()], truncate=True)

    def set_runner(self, network: str, runner: Callable[[dict[str, np.ndarray]], np.ndarray], label: str) -> None:
        self._runners[network] = runner
        self.runtimes[network] = label

    def run(self, network: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
        runner = self._runners.get(network)
        if runner is None:
            from polymodal.models.runtime import TorchRunner

            runner = TorchRunner(self.networks()[network].module, self.device)
            self.set_runner(network, runner, "torch")
        return runner(inputs)

    def _embed_image_batch(self, batch: list[Any]) -> np.ndarray:
        """Embed preprocessed images; any scale, the base normalises."""
        pixels = np.stack([np.asarray(x, dtype=np.float32) for x in batch])
        return self.postprocess_image(self.run("image", {"pixel_values": pixels}))

    def _embed_text_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        """Embed texts; raise TextTooLongError for an over-long text unless ``truncate``."""
        return self.run("text", self.text_inputs(texts, truncate))

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
        """Decode one input to an RGB PIL image with EXIF orientation applied.

        JPEGs are decoded at a reduced size (DCT scaling) when the photo is much larger than the network's
        input: the short side stays at least twice the input size, so the final resize still averages
        over several source pixels, and decoding a 12-megapixel photo gets 3-4x cheaper.
        """
        size = self.input_size
        return load_image(item, min_side=2 * size if size else None)

    def _prepare(self, item: ImageInput) -> Any:
        return self.preprocess_image(self.load_image(item))

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
        for done, batch in self._prepared_batches(items, size):
            out.append(self._embed_image_batch(batch))
            if progress is not None:
                progress(done, len(items))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalise(np.concatenate(out, axis=0))

    def _prepared_batches(self, items: list[ImageInput], size: int) -> Iterator[tuple[int, list[Any]]]:
        """Decoded, preprocessed batches; worker threads decode the next batch while this one is embedded.

        At most two batches are in flight, so memory stays flat however many items there are. Pillow's
        decoders and resizers release the GIL, so threads overlap with inference without extra processes.
        """
        if self.decode_workers <= 0 or len(items) <= 1:
            for start in range(0, len(items), size):
                yield min(start + size, len(items)), [self._prepare(x) for x in items[start : start + size]]
            return
        from concurrent.futures import Future, ThreadPoolExecutor

        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="polymodal-decode") as pool:
            pending: list[list[Future[Any]]] = []
            starts = iter(range(0, len(items), size))

            def submit() -> None:
                start = next(starts, None)
                if start is not None:
                    pending.append([pool.submit(self._prepare, x) for x in items[start : start + size]])

            submit()
            submit()
            done = 0
            try:
                while pending:
                    futures = pending.pop(0)
                    submit()
                    batch = [f.result() for f in futures]  # re-raises the first bad item's error
                    done += len(batch)
                    yield done, batch
            finally:
                for futures in pending:
                    for f in futures:
                        f.cancel()

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
        return normalise(np.concatenate(out, axis=0))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} dim={self.dim} device={self.device}>"


class TorchCLIPEncoder(Encoder):
    """A backend whose ``model`` is one torch module with CLIP's learned ``logit_scale`` (and SigLIP's
    ``logit_bias`` when present). Subclasses set ``_dim`` and ``_context`` while loading."""

    model: Any
    _dim: int
    _context: int

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    @property
    def logit_bias(self) -> float | None:
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(bias.item())

    @property
    def context_length(self) -> int:
        return self._context

