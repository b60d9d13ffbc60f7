"""Transcript writers: SubRip (.srt), WebVTT (.vtt), JSON and plain text; and readers for SRT/VTT.

SRT cues are numbered from 1 with ``HH:MM:SS,mmm --> HH:MM:SS,mmm``; WebVTT starts with ``WEBVTT`` and uses
``HH:MM:SS.mmm`` (W3C WebVTT, section 4). Times are rounded to the millisecond once, in one place, so a cue's
end is never written before its start.
"""

from __future__ import annotations

import json
import re

from polymodal.errors import InputError
from polymodal.speech.types import SpeechSegment, Transcript

FORMATS = ("txt", "srt", "vtt", "json")


def timestamp(seconds: float, sep: str = ",") -> str:
    """``HH:MM:SS,mmm`` (sep "," for SRT, "." for WebVTT); negative times are written as zero."""
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue in both formats, and "-->" inside a cue would read as a timing line.
    lines = [ln.strip() for ln in text.replace("-->", "->").splitlines()]
    return "\n".join(ln for ln in lines if ln) or "..."


def _cues(transcript: Transcript) -> list[SpeechSegment]:
    return [s for s in transcript.segments if s.text.strip()]


def to_srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{timestamp(s.start)} --> {timestamp(max(s.end, s.start))}\n{_cue_text(s.text)}\n"
        for i, s in enumerate(_cues(transcript), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    blocks = [
        f"{timestamp(s.start, '.')} --> {timestamp(max(s.end, s.start), '.')}\n{_cue_text(s.text)}\n"
        for s in _cues(transcript)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_txt(transcript: Transcript) -> str:
    """One line per segment (whitespace inside a segment folded), so line N is segment N."""
    return "".join(" ".join(s.text.split()) + "\n" for s in _cues(transcript))


def to_json(transcript: Transcript, source: str | None = None) -> str:
    data = transcript.to_dict()
    if source is not None:
        data = {"path": source, **data}
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def render(transcript: Transcript, fmt: str, source: str | None = None) -> str:
    """The transcript in ``fmt`` (one of FORMATS)."""
    if fmt == "srt":
        return to_srt(transcript)
    if fmt == "vtt":
        return to_vtt(transcript)
    if fmt == "txt":
        return to_txt(transcript)
    if fmt == "json":
        return to_json(transcript, source)
    raise InputError(f"unknown transcript format {fmt!r}; use one of: {', '.join(FORMATS)}")


_TIME = re.compile(r"^(?:(\d+):)?(\d{2}):(\d{2})[,.](\d{3})$")


def parse_timestamp(text: str) -> float:
    m = _TIME.match(text.strip())
    if not m:
        raise InputError(f"not a subtitle timestamp: {text!r}")
    h, mnt, s, ms = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mnt * 60 + s + ms / 1000


def parse_cues(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue in SRT or WebVTT text (cue numbers, identifiers and headers skipped)."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = block.split("\n")
        for i, line in enumerate(lines):
            if "-->" in line:
                start, end = line.split("-->")
                cues.append((parse_timestamp(start), parse_timestamp(end.split()[0]), "\n".join(lines[i + 1:])))
                break
    return cues
