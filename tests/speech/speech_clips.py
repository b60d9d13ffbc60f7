"""The speech clip the speech tests share: two espeak-ng phrases with silence around them, and its facts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speech_media import read_wav, silence, speak, write_wav

#: two phrases espeak-ng says clearly enough for tiny.en to get every content word
PHRASE_1 = "Please open the window in the kitchen."
PHRASE_2 = "The red car is parked near the beach."
LEAD_SILENCE = 2.5  # seconds before the first word: VAD must skip it
GAP = 1.5


@dataclass
class SpeechClip:
    path: Path
    samples: np.ndarray
    rate: int
    phrase_1: tuple[float, float]  # (start, end) of audible speech, measured from the samples
    phrase_2: tuple[float, float]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


def _audible(x: np.ndarray, rate: int, offset: float) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(x) > 0.02)
    return offset + loud[0] / rate, offset + loud[-1] / rate


def make_clip(d: Path) -> SpeechClip:
    one, rate = read_wav(speak(PHRASE_1, d / "one.wav", rate=130))
    two, _ = read_wav(speak(PHRASE_2, d / "two.wav", rate=130))
    samples = np.concatenate([silence(LEAD_SILENCE), one, silence(GAP), two, silence(0.5)]).astype(np.float32)
    t1 = LEAD_SILENCE
    t2 = t1 + len(one) / rate + GAP
    path = write_wav(d / "clip.wav", samples, rate)
    return SpeechClip(path, samples, rate, _audible(one, rate, t1), _audible(two, rate, t2))


def words_of(text: str) -> set[str]:
    """The lower-cased words of a text, punctuation stripped."""
    return {w.strip(".,!?;:'\"").lower() for w in text.split() if w.strip(".,!?;:'\"")}
