"""Fixtures for the speech tests: real espeak-ng speech, transcribed once per session by the real tiny.en."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # speech_media
sys.path.insert(0, str(Path(__file__).resolve().parent))  # speech_clips

from speech_clips import SpeechClip, make_clip


@pytest.fixture(scope="session")
def speech_clip(tmp_path_factory: pytest.TempPathFactory) -> SpeechClip:
    return make_clip(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="session")
def clip_transcript(speech_clip: SpeechClip):
    """The clip transcribed by the default model (tiny.en, int8, VAD, word timestamps), once."""
    from polymodal.speech import transcribe

    return transcribe(speech_clip.path)
