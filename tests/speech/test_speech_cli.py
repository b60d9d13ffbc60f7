"""``polymodal transcribe`` end to end on real speech: valid SRT, WebVTT, JSON and text, and clean errors."""

from __future__ import annotations

import json

import pytest
from speech_clips import words_of

from polymodal.cli import main
from polymodal.speech.formats import parse_cues


def test_srt_to_stdout(speech_clip, capsys):
    assert main(["transcribe", str(speech_clip.path), "--format", "srt"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("1\n")
    cues = parse_cues(out)
    assert cues and all(0 <= a <= b <= speech_clip.duration for a, b, _ in cues)
    assert {"kitchen", "beach"} <= words_of(" ".join(t for _, _, t in cues))
    assert "transcribed" in err and "language en" in err


def test_vtt_json_txt_to_files(speech_clip, tmp_path, capsys):
    # the format follows the output's extension when --format is not given
    for ext in ("vtt", "json", "txt"):
        assert main(["transcribe", str(speech_clip.path), "-o", str(tmp_path / f"out.{ext}")]) == 0
    assert capsys.readouterr().out == ""
    vtt = (tmp_path / "out.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n") and parse_cues(vtt)
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["path"] == str(speech_clip.path) and data["language"] == "en"
    assert data["duration"] == pytest.approx(speech_clip.duration, abs=0.01)
    assert all(w["start"] <= w["end"] for s in data["segments"] for w in s["words"])
    txt = (tmp_path / "out.txt").read_text()
    assert txt.count("\n") == len(data["segments"])
    assert {"window", "car"} <= words_of(txt)
    assert [ln for ln in tmp_path.iterdir() if ln.name.startswith(".")] == []  # no temporary files left


def test_errors_become_exit_codes(tmp_path, capsys):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    assert main(["transcribe", str(empty)]) == 4
    assert "empty.mp3" in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path / "none.wav")]) == 4
    assert "no such file" in capsys.readouterr().err
    assert main(["transcribe", str(empty), "--model", "not-a-whisper"]) == 3
    assert "unknown speech model" in capsys.readouterr().err
