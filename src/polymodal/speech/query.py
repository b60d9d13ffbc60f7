"""A spoken query: a short recording (WAV, MP3, M4A, WebM/Opus from a browser's MediaRecorder, ...) to the text
a search runs with, through the offline Whisper (tiny.en unless another model is named)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from polymodal.errors import InputError

#: seconds of a recording transcribed at most: a query is a phrase, and this bounds an upload's work
MAX_SECONDS = 60.0
#: decoding and, again, transcribing a query may take this long before it is refused
TIME_LIMIT = 60.0
_WORD = re.compile(r"\w", re.UNICODE)


def spoken_query(audio: str | os.PathLike[str] | bytes, *, model: str | None = None, language: str | None = None,
                 source: str | None = None) -> str:
    """What was said in ``audio`` (a file path, or the recording's bytes), as one line of text.

    Raises InputError naming the recording when nothing was said (silence, noise, or words Whisper cannot
    make out: it then returns no segments or only punctuation), or when it runs past ``MAX_SECONDS``.
    """
    from polymodal.speech.transcribe import transcribe

    name = source or (os.fspath(audio) if not isinstance(audio, bytes) else f"<{len(audio)} bytes of audio>")
    if isinstance(audio, bytes):
        if not audio:
            raise InputError(f"the recording {name} is empty")
        with tempfile.TemporaryDirectory(prefix="polymodal-voice-") as tmp:
            path = Path(tmp) / "query"
            path.write_bytes(audio)
            return _heard(transcribe(path, model=model, language=language, word_timestamps=False,
                                     time_limit=TIME_LIMIT), name)
    return _heard(transcribe(audio, model=model, language=language, word_timestamps=False, time_limit=TIME_LIMIT),
                  name)


def _heard(transcript: Any, name: str) -> str:
    if transcript.duration > MAX_SECONDS:
        raise InputError(f"the recording {name} lasts {transcript.duration:.0f} s; a spoken query may last "
                         f"{MAX_SECONDS:.0f} s")
    text = " ".join(transcript.text.split())
    if not _WORD.search(text):
        raise InputError(f"no words were heard in {name}; speak closer to the microphone, or type the query")
    return text
