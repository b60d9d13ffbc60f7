"""Transcript writers on hand-made transcripts: exact SRT/WebVTT text, and what the readers get back."""

from __future__ import annotations

import json

import pytest

from polymodal.errors import InputError
from polymodal.speech import SpeechSegment, Transcript, Word
from polymodal.speech.formats import parse_cues, parse_timestamp, render, timestamp, to_srt, to_txt, to_vtt


@pytest.fixture
def transcript() -> Transcript:
    return Transcript(
        language="en",
        duration=3725.0,
        model="tiny.en",
        segments=[
            SpeechSegment(0.0, 1.5, "Hello there.", [Word(0.0, 0.6, " Hello", 0.9), Word(0.7, 1.5, " there.", 0.8)]),
            SpeechSegment(61.2344, 62.0006, "  A minute later.  "),
            SpeechSegment(70.0, 71.0, "   "),  # nothing said: no cue
            SpeechSegment(3723.999, 3724.5, "An hour --> on.\n\nStill here."),
        ],
    )


def test_timestamps():
    assert timestamp(0) == "00:00:00,000"
    assert timestamp(61.2344) == "00:01:01,234"
    assert timestamp(3599.9996) == "01:00:00,000"  # rounding carries into the hours
    assert timestamp(3723.999, ".") == "01:02:03.999"
    assert timestamp(-0.2) == "00:00:00,000"
    assert timestamp(360000.5) == "100:00:00,500"


def test_srt_exact(transcript):
    assert to_srt(transcript) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        "2\n00:01:01,234 --> 00:01:02,001\nA minute later.\n\n"
        "3\n01:02:03,999 --> 01:02:04,500\nAn hour -> on.\nStill here.\n"
    )


def test_vtt_exact(transcript):
    assert to_vtt(transcript) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.500\nHello there.\n\n"
        "00:01:01.234 --> 00:01:02.001\nA minute later.\n\n"
        "01:02:03.999 --> 01:02:04.500\nAn hour -> on.\nStill here.\n"
    )


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_round_trip(transcript, fmt):
    cues = parse_cues(render(transcript, fmt))
    spoken = [s for s in transcript.segments if s.text.strip()]
    assert len(cues) == len(spoken)
    for (start, end, text), seg in zip(cues, spoken):
        assert start == pytest.approx(seg.start, abs=0.0005)
        assert end == pytest.approx(seg.end, abs=0.0005)
        assert text.replace("\n", " ") == " ".join(seg.text.replace("-->", "->").split())


def test_txt_and_json(transcript):
    assert to_txt(transcript) == "Hello there.\nA minute later.\nAn hour --> on. Still here.\n"
    data = json.loads(render(transcript, "json", source="talk.mp4"))
    assert data["path"] == "talk.mp4" and data["language"] == "en" and data["model"] == "tiny.en"
    assert data["segments"][0]["words"][1] == {"start": 0.7, "end": 1.5, "word": " there.", "probability": 0.8}
    assert len(data["segments"]) == 4


def test_empty_transcript():
    empty = Transcript(language="en", duration=4.0)
    assert to_srt(empty) == "" and to_vtt(empty) == "WEBVTT\n\n" and to_txt(empty) == ""


def test_bad_format_and_timestamp():
    with pytest.raises(InputError, match="unknown transcript format 'docx'"):
        render(Transcript("en", 1.0), "docx")
    with pytest.raises(InputError, match="not a subtitle timestamp"):
        parse_timestamp("1:2:3")


def test_json_reads_back_into_the_same_transcript(transcript):
    assert Transcript.from_dict(json.loads(render(transcript, "json", source="x.wav"))) == transcript
