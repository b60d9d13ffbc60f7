"""Fixtures for generation tests: one tiny random SD pipeline and one tiny CLIP scorer per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_pipeline import make_tiny_sd

    return make_tiny_sd(tmp_path_factory.mktemp("pipelines") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("scorers") / "tiny-clip")


@pytest.fixture(scope="session")
def scorer():
    """The offline encoder as the judge: a random tiny CLIP gives every picture a negative cosine, so its
    CLIPScores are all 0 and would rank nothing."""
    from polymodal.models import load_model

    return load_model("lite", device="cpu", runtime="torch")


@pytest.fixture(scope="session")
def generator(tiny_sd: Path):
    """The tiny pipeline loaded through the real spec path (a plain directory), shared by the API tests."""
    from polymodal.generation import load_generator

    return load_generator(str(tiny_sd), device="cpu")
