"""Fixtures for the server tests: one indexed library of real photos, an app over it, a TestClient."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from server_helpers import LiveServer, app_for

sys.path.insert(0, str(Path(__file__).parent))  # server_helpers
PHOTOS = ("cat", "coffee", "rocket", "motorbike", "flower", "horse")


def make_photo_dir(folder: Path, photos: dict[str, Path], names: tuple[str, ...] = PHOTOS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        src = photos[name]
        dst = folder / f"{name}{src.suffix}"
        shutil.copy(src, dst)
        t = 1_600_000_000 + i * 86_400 * 40  # distinct dates, 40 days apart, from 2020-09
        os.utime(dst, (t, t))
    return folder


@pytest.fixture(autouse=True)
def _polymodal_logger():
    """A clean "polymodal" logger for each test: an in-process `main()` (the CLI tests) sets it up for a terminal
    (its own handler, no propagation), after which caplog would see none of the server's log lines."""
    import logging

    log = logging.getLogger("polymodal")
    saved = (log.handlers[:], log.level, log.propagate)
    log.handlers[:], log.propagate = [], True
    log.setLevel(logging.NOTSET)
    yield
    log.handlers[:], log.propagate = saved[0], saved[2]
    log.setLevel(saved[1])


@pytest.fixture(scope="session")
def served_library(tmp_path_factory, photos, lite):
    """(library, photo folder): six real photos indexed with the offline model, shared read-only."""
    from polymodal.library import Library

    root = tmp_path_factory.mktemp("served")
    folder = make_photo_dir(root / "photos", photos)
    lib = Library.open(root / "lib", model=lite)
    lib.add([folder])
    return lib, folder


@pytest.fixture(scope="session")
def app(served_library):
    return app_for(served_library[0])


@pytest.fixture
def client(app):
    """A TestClient of ``app``: the served library's, or the app a test module defines in its place."""
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c


@pytest.fixture(scope="session")
def live(app):
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def opened_files():
    """A list that collects every file path the process opens while it is recording (an audit hook)."""
    state = {"on": False, "paths": []}

    def hook(event, args):
        if state["on"] and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            state["paths"].append(os.fsdecode(args[0]))

    sys.addaudithook(hook)
    return state
