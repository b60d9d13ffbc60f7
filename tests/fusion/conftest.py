from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # synthetic
sys.path.insert(0, str(Path(__file__).parents[1] / "train"))  # shapes
sys.path.insert(0, str(Path(__file__).parents[1]))  # tiny_models


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models train faster on one thread than fighting for two shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("fusion-models") / "tiny-clip")
