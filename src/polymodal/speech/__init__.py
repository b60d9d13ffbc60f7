"""Speech transcription: audio files and video sound tracks to timestamped text, offline.

    >>> from polymodal.speech import transcribe
    >>> t = transcribe("talk.mp4")            # the bundled Whisper tiny.en, int8 on CPU
    >>> [(s.start, s.end, s.text) for s in t.segments]
"""

from __future__ import annotations

from polymodal.speech.models import DEFAULT_MODEL, load_whisper, resolve_model
from polymodal.speech.transcribe import transcribe
from polymodal.speech.types import SpeechSegment, Transcript, Word

__all__ = ["DEFAULT_MODEL", "SpeechSegment", "Transcript", "Word", "load_whisper", "resolve_model", "transcribe"]
