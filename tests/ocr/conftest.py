"""Fixtures of the OCR tests; the drawing helpers live in conftest_ocr.py so tests can import them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest_ocr import engine, read_pages, rendered  # noqa: F401 - fixtures
