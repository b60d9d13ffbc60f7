"""Text in pictures, offline: ``read_text(images)`` gives each picture's lines of text with their boxes.

The default engine (``rapid``) is PP-OCRv4 from the rapidocr-onnxruntime wheel, reading Chinese and English;
see docs/ocr.md. Importing this package loads no model and no numpy.
"""

from __future__ import annotations

from polymodal.errors import OcrError
from polymodal.ocr.api import MAX_LINES, read_text
from polymodal.ocr.base import EngineBackend, OcrEngine, load_engine, register_engine
from polymodal.ocr.types import EngineReading, OcrLine, OcrResult

__all__ = ["MAX_LINES", "EngineBackend", "EngineReading", "OcrEngine", "OcrError", "OcrLine", "OcrResult",
           "load_engine", "read_text", "register_engine"]
