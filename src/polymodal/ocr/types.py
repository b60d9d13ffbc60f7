"""What OCR hands back: plain dataclasses, the same whatever the engine or the caller (API, CLI, eval)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OcrLine:
    """One line of text found in a picture, in pixels of the picture as displayed (EXIF orientation applied)."""

    text: str
    confidence: float  # the recogniser's mean per-character probability, 0..1
    box: tuple[int, int, int, int]  # x0, y0, x1, y1: the axis-aligned bounds of ``quad``
    #: the line's outline, possibly rotated: four corners clockwise from the top-left one as the picture is
    #: seen (for an upside-down line that is where its text ends)
    quad: tuple[tuple[float, float], ...]


@dataclass
class EngineReading:
    """What an engine hands back for one picture (``OcrEngine.read``)."""

    lines: list[OcrLine]  # in any order
    capped: bool = False  # the picture held more lines than the limit it was given; the largest were read


@dataclass
class OcrResult:
    """The text of one picture."""

    input: str  # the picture as the caller named it (a path, or "<N bytes>" / "<Image>")
    width: int  # size of the picture as displayed
    height: int
    lines: list[OcrLine] = field(default_factory=list)  # in reading order
    capped: bool = False  # True when the picture held more lines than were read (see ``max_lines``)

    @property
    def text(self) -> str:
        """All lines, one per line of text, in reading order."""
        return "\n".join(line.text for line in self.lines)
