"""Spoken queries (``search --voice FILE|-``): speech made with espeak-ng, transcribed by the bundled Whisper
tiny.en, searched as text over real photos with the offline model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polymodal.cli import main
from polymodal.library.query import literal, parse_term

sys.path.insert(0, str(Path(__file__).parent.parent))  # media_factory
from media_factory import espeak, make_audio


@pytest.fixture
def indexed(tmp_path, photo_dir, lite_encoder, monkeypatch) -> Path:
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(lite_encoder.folder.parents[2]))  # the session's export
    lib = tmp_path / "lib"
    assert main(["index", str(photo_dir), "-L", str(lib), "--no-speech"]) == 0
    return lib


def _speech(path: Path, text: str) -> Path:
    pad = np.zeros(8000, np.float32)  # half a second of silence each side, as a recording has
    return make_audio(path, np.concatenate([pad, espeak(text, rate=120), pad]))


@pytest.mark.parametrize("suffix", [".wav", ".m4a"])
def test_a_spoken_query_finds_the_photo_and_says_what_it_heard(indexed, tmp_path, capsys, suffix):
    capsys.readouterr()
    audio = _speech(tmp_path / f"query{suffix}", "a cup of coffee")
    assert main(["search", "--voice", str(audio), "-L", str(indexed), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "coffee" in err.split("heard", 1)[1]  # the transcript is shown with the hits
    assert Path(json.loads(out)[0]["path"]).name == "coffee.png"


def test_a_spoken_query_from_standard_input(indexed, tmp_path):
    audio = _speech(tmp_path / "q.wav", "a space rocket launch")
    res = subprocess.run([sys.executable, "-m", "polymodal", "search", "--voice", "-", "-L", str(indexed), "--json"],
                         input=audio.read_bytes(), capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert Path(json.loads(res.stdout)[0]["path"]).name == "rocket.jpg"


def test_silence_says_no_words_were_heard_instead_of_searching(indexed, tmp_path, capsys):
    silent = make_audio(tmp_path / "silence.wav", np.zeros(32000, np.float32))
    assert main(["search", "--voice", str(silent), "-L", str(indexed)]) == 4
    err = capsys.readouterr().err
    assert "no words were heard in" in err and "silence.wav" in err and "Traceback" not in err
    assert main(["search", "--voice", str(tmp_path / "missing.wav"), "-L", str(indexed)]) == 4
    assert "no such file" in capsys.readouterr().err


def test_a_transcript_is_searched_literally():
    assert parse_term(literal("2:30 pm")).text == "2:30 pm"  # not weight 2 of "30 pm"
    assert parse_term("2:30 pm").text == "30 pm"  # positive control: what the query syntax does otherwise
