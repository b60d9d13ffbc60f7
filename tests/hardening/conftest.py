"""Fixtures for the hardening tests: the library tests' offline model, photos and environment, reused."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "library"))  # library_helpers, library_fixtures
sys.path.insert(0, str(HERE.parent))  # media_factory: small real videos made with PyAV
sys.path.insert(0, str(HERE.parent.parent / "benchmarks"))  # the chaos, corpus and fuzz scripts

from library_fixtures import _library_env, lite_encoder, photo_dir  # noqa: E402, F401
