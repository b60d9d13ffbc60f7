"""Speech to timestamped text with faster-whisper (CTranslate2 Whisper), offline.

The audio is decoded by polymodal.media.audio (PyAV, in a killable child process), then handed to
faster-whisper as a 16 kHz waveform, so faster-whisper's own decoder never touches the file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from polymodal.errors import InputError, MediaTimeoutError
from polymodal.media.audio import SAMPLE_RATE, load_audio
from polymodal.speech.models import load_whisper, resolve_model
from polymodal.speech.types import SpeechSegment, Transcript, Word

#: progress(seconds of audio done, seconds of audio in total)
Progress = Callable[[float, float], None]


def transcribe(
    path: str | os.PathLike[str],
    *,
    model: str | None = None,
    language: str | None = None,
    vad: bool = True,
    word_timestamps: bool = True,
    time_limit: float | None = None,
    progress: Progress | None = None,
    device: str = "cpu",
    compute_type: str = "int8",
    beam_size: int = 5,
) -> Transcript:
    """Transcribe the first audio track of ``path`` (an audio file or a video with sound).

    ``model``: a speech model spec (see polymodal.speech.models; default the bundled tiny.en).
    ``language``: ISO 639-1 code; None detects it with a multilingual model ("en" for ".en" models).
    ``vad``: skip silence with Silero VAD before decoding (faster and fewer hallucinations on silence).
    ``time_limit``: seconds for decoding the file (a hard limit: the decoder process is killed) and again
    for transcribing it (checked after each segment). Raises MediaTimeoutError past either.

    Raises MediaDecodeError for unreadable files, NoAudioError for a file without an audio track,
    ModelSpecError / ModelLoadError for a model that cannot be used, InputError for a language the model
    does not speak.
    """
    resolve_model(model)  # a bad spec fails before any decoding; loading waits until the audio is known good
    decoded = load_audio(path, sample_rate=SAMPLE_RATE, time_limit=time_limit)
    whisper = load_whisper(model, device=device, compute_type=compute_type)
    multilingual = bool(whisper.model.is_multilingual)
    if language is not None:
        language = language.strip().lower()
        if language not in whisper.supported_languages:
            raise InputError(
                f"speech model {whisper.polymodal_name!r} does not transcribe language {language!r}; "
                f"it knows: {', '.join(whisper.supported_languages[:20])}"
                + (" ..." if len(whisper.supported_languages) > 20 else "")
            )
    elif not multilingual:
        language = "en"  # an English-only model: nothing to detect

    duration = decoded.info.duration
    if progress is not None:
        progress(0.0, duration)

    started = time.monotonic()
    segments_iter, info = whisper.transcribe(
        decoded.samples,
        language=language,
        beam_size=beam_size,
        word_timestamps=word_timestamps,
        vad_filter=vad,
        # Whisper's "previous text" conditioning makes a hallucination repeat across windows; off is the
        # common advice for long, untidy audio and costs nothing on clean speech.
        condition_on_previous_text=False,
    )
    segments: list[SpeechSegment] = []
    for seg in segments_iter:  # a generator: decoding happens as we iterate
        segments.append(_segment(seg, duration))
        if progress is not None:
            progress(min(float(seg.end), duration), duration)
        if time_limit is not None and time.monotonic() - started > time_limit:
            raise MediaTimeoutError(os.fspath(path), time_limit, stage="transcribing")
    if progress is not None:
        progress(duration, duration)
    return Transcript(
        language=info.language if language is None else language,
        duration=duration,
        segments=segments,
        model=whisper.polymodal_name,
        language_probability=float(info.language_probability) if language is None and multilingual else None,
    )


def _clamp(t: float, duration: float) -> float:
    return round(min(max(float(t), 0.0), duration), 3)


def _segment(seg: Any, duration: float) -> SpeechSegment:
    # Whisper's timestamps can overshoot the end of the audio by a frame or two; keep them inside it.
    words = [
        Word(start=_clamp(w.start, duration), end=_clamp(w.end, duration), word=w.word,
             probability=round(float(w.probability), 4))
        for w in (seg.words or [])
    ]
    return SpeechSegment(start=_clamp(seg.start, duration), end=_clamp(seg.end, duration), text=seg.text.strip(),
                         words=words)
