"""The typed results of transcription: words inside segments inside a transcript, times in seconds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Word:
    start: float  #: seconds from the start of the file
    end: float
    word: str  #: as Whisper emits it, usually with its leading space
    probability: float  #: the model's probability for this word, 0..1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SpeechSegment:
    start: float  #: seconds from the start of the file
    end: float
    text: str  #: stripped of surrounding whitespace
    words: list[Word] = field(default_factory=list)  #: empty when word timestamps were not asked for

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "words": [w.to_dict() for w in self.words]}


@dataclass
class Transcript:
    language: str  #: ISO 639-1 code, detected (multilingual models) or given / implied (".en" models)
    duration: float  #: seconds of audio in the file
    segments: list[SpeechSegment] = field(default_factory=list)
    model: str = ""  #: the model spec that made it, for provenance
    language_probability: float | None = None  #: set when the language was detected

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """The inverse of to_dict (what ``polymodal transcribe --format json`` writes); ``text`` is derived."""
        segments = [
            SpeechSegment(float(s["start"]), float(s["end"]), str(s["text"]),
                          [Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w["probability"]))
                           for w in s.get("words", [])])
            for s in data.get("segments", [])
        ]
        return cls(language=str(data["language"]), duration=float(data["duration"]), segments=segments,
                   model=str(data.get("model", "")), language_probability=data.get("language_probability"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "language_probability": self.language_probability,
            "duration": self.duration,
            "model": self.model,
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
        }
