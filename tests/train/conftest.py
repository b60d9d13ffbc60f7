from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # shapes


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def shape_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shapes import make_pairs

    return make_pairs(tmp_path_factory.mktemp("shape-pairs"))
