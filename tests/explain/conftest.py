"""Fixtures of the explain tests: lite on torch loaded once (the same instance the CLI gets), and scenes."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def cam_lite() -> Any:
    """The torch lite encoder explain loads for itself (``torch_lite(None)``), so CLI runs in the same process
    reuse it instead of loading a second copy."""
    from polymodal.explain.cam import torch_lite

    return torch_lite(None)
