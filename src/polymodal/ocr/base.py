"""The OCR engine interface and its registry.

An engine implements one method, ``read``: a decoded RGB picture in, lines out. Decoding, EXIF orientation,
the pixel limit, reading order, capping and error naming are done once, in ``ocr.api``, for every engine.
Engines are named by a spec in the same ``<scheme>[:<target>]`` form as encoders and parsed by the same
generic ``Registry``; plugins register under the entry-point group ``polymodal.ocr_engines``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polymodal.registry import Registry, Spec

if TYPE_CHECKING:
    from PIL import Image

    from polymodal.ocr.types import EngineReading

ENTRY_POINT_GROUP = "polymodal.ocr_engines"
DEFAULT_ENGINE = "rapid"


class OcrEngine(abc.ABC):
    """Reads the lines of text in one picture."""

    name: str = "ocr"  # the spec that loads this engine, for messages and results

    @abc.abstractmethod
    def read(self, image: Image.Image, limit: int | None = None) -> EngineReading:
        """The lines of text in ``image`` (RGB, as displayed), in any order, boxes in its pixels.

        ``limit``: recognise at most this many lines, keeping the largest, and say so (``capped``) when more
        were found: detection is cheap, recognition costs per line, so a picture of thousands of words stays
        bounded in time. Only the engine knows how many it found (some found lines read as nothing), hence a
        reading rather than a bare list.
        """


@dataclass(frozen=True)
class EngineBackend:
    scheme: str  # the spec's name before any ':'
    description: str
    examples: tuple[str, ...]
    load: Callable[[Spec], OcrEngine]
    needs_target: bool = False  # engines are self-contained by default ("rapid")
    detect_dir: Callable[[Path], bool] | None = None  # recognises a directory of this engine's model files
    list_models: Callable[[], list[Any]] = field(default=lambda: [])


REGISTRY: Registry[EngineBackend] = Registry(
    "OCR engine", ENTRY_POINT_GROUP, EngineBackend,
    "det.onnx, cls.onnx and rec.onnx of a PP-OCR model (rec.onnx carrying its 'character' list)",
)


def register_engine(backend: EngineBackend) -> None:
    """Add (or replace) an engine. The built-ins come through here as a plugin does."""
    REGISTRY.register(backend)


def load_engine(spec: str | None = None) -> OcrEngine:
    """The engine ``spec`` names (default ``rapid``: PP-OCRv4 Chinese/English, offline)."""
    _register_builtins()
    parsed = REGISTRY.parse(spec or DEFAULT_ENGINE, bare_takes_target=True)
    return REGISTRY.backends()[parsed.scheme].load(parsed)


def _register_builtins() -> None:
    if "rapid" not in REGISTRY.backends():
        from polymodal.ocr.rapid import BACKEND

        register_engine(BACKEND)
