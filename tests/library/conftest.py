"""Fixtures for the library tests (defined in library_fixtures, which the hardening tests share)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # library_helpers, library_fixtures

from library_fixtures import _library_env, embed_count, lite_encoder, photo_dir  # noqa: F401
