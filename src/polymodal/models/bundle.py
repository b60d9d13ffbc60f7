"""Exported models as self-contained directories ("bundles"), and the torch-free encoder that runs them.

A bundle holds everything inference needs and nothing that needs torch:

    polymodal_bundle.json   format, version, source spec and weights identity, dims, logit scale, the parity
                            report of each network, the tokenizer and preprocessing settings
    image.onnx, text.onnx   the networks (fp32, or int8 where that passed its parity check)
    tokenizer.json          the text tokenizer, for the ``tokenizers`` library
    classes.npy             lite only: the 1000 ImageNet class-prompt embeddings ConSE mixes
    backgrounds.npz         the library's calibration backgrounds, embedded once at export

Loading one imports onnxruntime, tokenizers, numpy and Pillow. ONNX Runtime sessions are created on first
use of each network, so a text search never reads the image network. Every file's size and sha256 are
recorded and checked when it is read: a truncated or altered file is an error naming it, never different
numbers. The export cache (``polymodal.models.exports``) stores its exports in this same format, and
``polymodal models export`` copies one out.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from polymodal import __version__
from polymodal.errors import ModelLoadError
from polymodal.models.base import Encoder, normalise

log = logging.getLogger("polymodal")

BUNDLE_FILE = "polymodal_bundle.json"
FORMAT = "polymodal-bundle"
#: the newest bundle format this polymodal reads and writes; bump when the layout or meaning changes
BUNDLE_VERSION = 1
NETWORKS = ("image", "text")


def is_bundle(path: str | os.PathLike[str]) -> bool:
    return (Path(path).expanduser() / BUNDLE_FILE).is_file()


def feature_space(model: str | Encoder) -> str:
    """The spec whose embeddings ``model`` gives: a bundle's source spec, else the spec itself. A library
    built with a model can be searched with that model's bundle, and the other way round."""
    if isinstance(model, Encoder):
        return str(getattr(model, "source_spec", None) or model.name)
    if is_bundle(model):
        return str(read_meta(Path(model).expanduser())["source"]["spec"])
    return model


def read_meta(folder: Path) -> dict[str, Any]:
    """The bundle's metadata, checked for format and version; errors name the file and what would work."""
    path = folder / BUNDLE_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} is not a polymodal bundle: {BUNDLE_FILE} is missing") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read bundle metadata {path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelLoadError(f"{path} is not polymodal bundle metadata (format {FORMAT!r} expected)")
    version = meta.get("version")
    if not isinstance(version, int) or version > BUNDLE_VERSION:
        raise ModelLoadError(
            f"bundle {folder} is format version {version}; this polymodal ({__version__}) reads versions up to "
            f"{BUNDLE_VERSION}. Upgrade polymodal, or export the model again with this one"
        )
    for key in ("source", "dim", "logit_scale", "networks", "text", "image", "postprocess"):
        if key not in meta:
            raise ModelLoadError(f"bundle metadata {path} lacks {key!r}; export the model again")
    return meta


def _checked_bytes(folder: Path, entry: dict[str, Any]) -> bytes:
    """A (small) bundle file's bytes, after checking its recorded size and sha256."""
    import hashlib

    path = folder / str(entry["file"])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}; export the model again") from None
    if len(data) != entry.get("size") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise _damaged(path)
    return data


def _checked_file(folder: Path, entry: dict[str, Any]) -> Path:
    """A network file, checked against its recorded size and sha256. The digest is computed once per file
    version (``identity.cached_digests``: a 250 MB tower costs 0.2 s to hash, as much again as the rest of a
    search), streamed, with no second copy of a large network in memory beside the runtime's own."""
    from polymodal.models.identity import cached_digests

    path = folder / str(entry["file"])
    try:
        ok = path.stat().st_size == entry.get("size") and \
            cached_digests([path])[str(path.resolve())] == entry.get("sha256")
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}; export the model again") from None
    if not ok:
        raise _damaged(path)
    return path


def _damaged(path: Path) -> ModelLoadError:
    return ModelLoadError(
        f"{path} is damaged (its size or checksum differs from what {BUNDLE_FILE} records); export the model again"
    )


def file_entry(path: Path) -> dict[str, Any]:
    from polymodal.models.identity import file_digest

    return {"file": path.name, "size": path.stat().st_size, "sha256": file_digest(path)}


class _LazySession:
    """An ONNX Runtime session made on first call: loading a model costs nothing for a network never run."""

    def __init__(self, folder: Path, entry: dict[str, Any], threads: int | None) -> None:
        self.folder = folder
        self.entry = entry
        self.threads = threads
        self._runner: Any = None
        self._lock = threading.Lock()

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if self._runner is None:
            with self._lock:
                if self._runner is None:
                    from polymodal.models.runtime import OnnxRunner

                    path = _checked_file(self.folder, self.entry)
                    try:
                        self._runner = OnnxRunner(path, self.threads)
                    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own unrelated types
                        raise ModelLoadError(
                            f"ONNX Runtime cannot load {self.folder / self.entry['file']}: "
                            f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}"
                        ) from None
        return self._runner(inputs)


class BundleEncoder(Encoder):
    """An encoder read from a bundle directory: ONNX Runtime, ``tokenizers`` and numpy, on the CPU."""

    backend = "bundle"

    def __init__(self, folder: str | os.PathLike[str], name: str | None = None, batch_size: int | None = None,
                 threads: int | None = None, announce: bool = True) -> None:
        from polymodal.models.preprocess import ImageTransform
        from polymodal.models.textspec import BundleTokenizer

        self.folder = Path(folder).expanduser()
        meta = read_meta(self.folder)
        super().__init__(name or str(self.folder), device="cpu",
                         batch_size=batch_size or meta.get("batch_size") or self.default_batch_size)
        self.meta = meta
        source = meta["source"]
        #: the spec whose feature space this bundle reproduces (a library built with it can use the bundle)
        self.source_spec = str(source.get("spec"))
        self.source_backend = str(source.get("backend"))
        self.precision = str(meta.get("precision", "fp32"))
        self._dim = int(meta["dim"])
        self._scale = float(meta["logit_scale"])
        bias = meta.get("logit_bias")
        self._bias = None if bias is None else float(bias)
        self._context = meta.get("context_length")
        self.transform = ImageTransform.from_dict(meta["image"])
        self._input_size = meta.get("input_size")
        for net in NETWORKS:
            entry = meta["networks"].get(net)
            if entry is None:
                raise ModelLoadError(f"bundle {self.folder} has no {net} network; export the model again")
            path = self.folder / str(entry["file"])
            if not path.is_file():
                raise ModelLoadError(f"bundle {self.folder} lacks {entry['file']}; export the model again")
            if path.stat().st_size != entry.get("size"):  # the checksum is checked when the network is first run
                raise _damaged(path)
            self.set_runner(net, _LazySession(self.folder, entry, threads), str(entry.get("runtime", "onnx")))
            # said at every load: asking for int8 and getting fp32 is never silent
            if entry.get("fallback") and announce:
                log.warning("%s: %s", self.name, entry["fallback"])
        try:
            self.tokenizer = BundleTokenizer(self.folder, meta["text"])
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - a malformed text section: name the bundle
            raise ModelLoadError(f"bundle {self.folder} has an unusable tokenizer setting: {exc}") from None
        post = meta["postprocess"]
        self.post_kind = str(post.get("kind", "identity"))
        if self.post_kind not in ("identity", "conse", "lite-tuned"):
            raise ModelLoadError(f"bundle {self.folder} needs postprocessing {self.post_kind!r}, unknown here")
        self.post = post
        self.class_embeddings: np.ndarray | None = None
        if self.post_kind in ("conse", "lite-tuned"):
            self.class_embeddings = self._array(post["classes"])
            if self.class_embeddings.shape[-1] != self._dim:
                raise ModelLoadError(f"bundle {self.folder}: class embeddings are not {self._dim}-wide")
        self._backgrounds: dict[str, np.ndarray] | None = None

    def _array(self, entry: dict[str, Any]) -> np.ndarray:
        import io

        data = _checked_bytes(self.folder, entry)
        return np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)

    # --- what the Encoder interface asks ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def logit_scale(self) -> float:
        return self._scale

    @property
    def logit_bias(self) -> float | None:
        return self._bias

    @property
    def context_length(self) -> int | None:
        return None if self._context is None else int(self._context)

    @property
    def input_size(self) -> int | None:
        return None if self._input_size is None else int(self._input_size)

    def preprocess_image(self, image: Any) -> Any:
        return self.transform.to_array(image)

    def text_inputs(self, texts: list[str], truncate: bool) -> dict[str, np.ndarray]:
        return self.tokenizer.inputs(texts, truncate)

    def postprocess_image(self, output: np.ndarray) -> np.ndarray:
        if self.post_kind == "identity":
            return output
        assert self.class_embeddings is not None
        top_t, temperature = int(self.post["top_t"]), float(self.post["temperature"])
        if self.post_kind == "conse":
            return conse(output, self.class_embeddings, top_t, temperature)
        # lite-tuned: the network gives [projected features (dim) | class logits (1000)]
        tuned, logits = output[:, : self._dim], output[:, self._dim:]
        alpha = float(self.post["wise_alpha"])
        tuned = normalise(tuned)
        if alpha >= 1.0:
            return tuned
        return (1.0 - alpha) * normalise(conse(logits, self.class_embeddings, top_t, temperature)) + alpha * tuned

    @property
    def info(self) -> Any:
        from dataclasses import replace

        return replace(super().info, backend=self.source_backend,
                       extra={"bundle": str(self.folder), "source": self.source_spec, "precision": self.precision})

    @property
    def text_identity(self) -> str:
        """What this bundle's text embeddings depend on (its text network and tokenizer settings): a key under
        which text embeddings may be cached across processes."""
        import hashlib

        text = json.dumps([self.meta["networks"]["text"]["sha256"], self.meta["text"]], sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    def backgrounds(self) -> dict[str, np.ndarray] | None:
        """The calibration backgrounds embedded at export, when they match today's definition."""
        if self._backgrounds is None:
            entry = self.meta.get("backgrounds")
            from polymodal.models.calibration import BACKGROUND_VERSION

            if not entry or entry.get("version") != BACKGROUND_VERSION:
                return None
            import io

            with np.load(io.BytesIO(_checked_bytes(self.folder, entry)), allow_pickle=False) as z:
                self._backgrounds = {k: z[k].astype(np.float32) for k in z.files}
        return self._backgrounds


def conse(logits: np.ndarray, classes: np.ndarray, top_t: int, temperature: float) -> np.ndarray:
    """ConSE (Norouzi et al. 2014): the probability-weighted mean of the top-T class embeddings."""
    z = logits / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    top = np.argsort(-probs, axis=1)[:, :top_t]
    weights = np.take_along_axis(probs, top, axis=1)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nt,ntd->nd", weights, classes[top])
