"""Fixtures for the video tests: test media made once per session with PyAV and espeak-ng, one shared library.

``scenes.mp4`` is 9 s of three real photos, cat | coffee | rocket, cut at 3 s and 6 s, with two spoken
phrases muxed in: TRAIN at 3.4 s (during the coffee scene) and MEETING at 6.3 s (during the rocket scene).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))  # media_factory
sys.path.insert(0, str(Path(__file__).parent))  # video_media

from video_media import CUTS, FPS, GREEN, MEETING, TRAIN  # noqa: F401 - GREEN: the tests' phrase set

from media_factory import Scene, Speech, espeak, make_audio, make_video, photo, speech_track


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: the model's ONNX export is made once, not once per CLI call."""
    return tmp_path_factory.mktemp("model_cache")


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> None:
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("POLYMODAL_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("POLYMODAL_MODEL", "lite")
    monkeypatch.delenv("POLYMODAL_LIBRARY", raising=False)


@pytest.fixture(scope="session")
def lite_encoder(model_cache: Path):
    from polymodal.models import load_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLYMODAL_CACHE_DIR", str(model_cache))
        mp.setenv("HF_HUB_OFFLINE", "1")
        return load_model("lite")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video_media")


@pytest.fixture(scope="session")
def speech_spans(media_dir: Path) -> dict[str, tuple[float, float]]:
    """Where each phrase of scenes.mp4 is spoken: (start, end) in seconds."""
    return _scenes_video(media_dir)[1]


def _scenes_video(folder: Path) -> tuple[Path, dict[str, tuple[float, float]]]:
    path = folder / "scenes.mp4"
    phrases = [Speech(TRAIN, 3.4), Speech(MEETING, 6.3)]
    audio, spans = speech_track(phrases, 9.0)
    if not path.exists():
        make_video(path, [Scene("cat", 3), Scene("coffee", 3), Scene("rocket", 3)], fps=FPS, audio=audio)
    return path, {TRAIN: spans[0], MEETING: spans[1]}


@pytest.fixture(scope="session")
def scenes_video(media_dir: Path) -> Path:
    return _scenes_video(media_dir)[0]


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory, scenes_video: Path) -> Path:
    """Photos, the scenes video, a spoken WAV, and two broken media files, in one folder."""
    folder = tmp_path_factory.mktemp("mixed")
    shutil.copy(scenes_video, folder / "scenes.mp4")
    shutil.copy(photo("astronaut"), folder / "astronaut.png")
    shutil.copy(photo("horse"), folder / "horse.png")
    pad = np.zeros(8000, np.float32)
    make_audio(folder / "note.wav", np.concatenate([pad, espeak(GREEN), pad]))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not really a video " * 200)
    (folder / "empty.mkv").write_bytes(b"")
    return folder


@pytest.fixture(scope="session")
def video_library(tmp_path_factory: pytest.TempPathFactory, mixed_folder: Path, lite_encoder):
    """The mixed folder indexed once with lite and speech: (Library, IndexReport)."""
    from polymodal.library import Library

    lib = Library.open(tmp_path_factory.mktemp("vlib") / "library", model=lite_encoder)
    report = lib.add([mixed_folder])
    return lib, report
