"""Shared fixtures: an isolated environment (no hub, no user config, a private cache) and real photos."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tiny_models


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("polymodal-home")
    # The cache holds only derived data keyed by what made it (ONNX exports by weight files and versions,
    # lite's class prompts by their text), so it may outlive one run: a fresh clone starts it empty, and a
    # developer's second run skips the one-time exports. Tests of first-time behaviour use their own dirs.
    os.environ["POLYMODAL_CACHE_DIR"] = str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "polymodal")
    os.environ["POLYMODAL_CONFIG"] = str(home / "config.toml")  # absent: no user settings leak in
    os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
    os.environ.pop("POLYMODAL_MODEL", None)
    os.environ.pop("POLYMODAL_LIBRARY", None)


def _skimage_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _sklearn_dir() -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images"


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """Real photos shipped by scikit-image and scikit-learn, by short name."""
    sk = _skimage_dir()
    names = {
        "cat": sk / "chelsea.png",
        "coffee": sk / "coffee.png",
        "rocket": sk / "rocket.jpg",
        "motorbike": sk / "motorcycle_left.png",
        "astronaut": sk / "astronaut.png",
        "horse": sk / "horse.png",
        "camera": sk / "camera.png",
        "coins": sk / "coins.png",
        "brick": sk / "brick.png",
        "hubble": sk / "hubble_deep_field.jpg",
        "flower": _sklearn_dir() / "flower.jpg",
        "china": _sklearn_dir() / "china.jpg",
    }
    for p in names.values():
        assert p.exists(), p
    return names


@pytest.fixture(scope="session")
def lite():
    from polymodal.models import load_model

    return load_model("lite")


@pytest.fixture(scope="session")
def lite_torch():
    """``lite`` as torch modules (its networks' internals), where ``lite`` itself loads the exported bundle."""
    from polymodal.models import load_model

    return load_model("lite", runtime="torch")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random transformers CLIP saved to disk, loaded through the same spec path as a real one."""
    from tiny_models import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("shared-models") / "tiny-clip")


@pytest.fixture
def one_torch_thread():
    """Tiny models train faster on one thread than fighting for two shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def polymodal_log():
    handler = _Records()
    log = logging.getLogger("polymodal")
    log.addHandler(handler)
    yield handler.messages
    log.removeHandler(handler)
