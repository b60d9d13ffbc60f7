from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # synthetic
sys.path.insert(0, str(Path(__file__).parents[1] / "train"))  # shapes


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield
