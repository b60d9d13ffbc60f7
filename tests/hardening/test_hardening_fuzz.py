"""Inputs the fuzzer once broke ingest with, replayed through the same entry points; and a short fuzzing run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_ingest import one_input

REGRESSIONS = Path(__file__).parent / "regressions"
CASES = sorted((t.name, p) for t in REGRESSIONS.iterdir() if t.is_dir() for p in t.iterdir() if p.is_file())


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.name}" for t, p in CASES])
def test_a_kept_crash_no_longer_breaks_ingest(target, path):
    one_input(target, path.read_bytes())  # raising anything here is the bug coming back


def test_the_kept_video_crashes_are_typed_failures(tmp_path):
    from polymodal.errors import MediaDecodeError
    from polymodal.media.video import analyse_video

    reasons = {}
    for path in sorted((REGRESSIONS / "video").iterdir()):
        with pytest.raises(MediaDecodeError) as err:
            analyse_video(path, time_limit=60)
        reasons[path.name] = err.value.reason
    assert reasons["no_decoder_for_codec.mp4"] == "no decoder for its video codec"
    assert "the decoder failed" not in " ".join(reasons.values())  # each one has a reason, not a crash report


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_short_fuzzing_run_finds_nothing(tmp_path):
    pytest.importorskip("atheris", reason="atheris has wheels only for Linux x86-64 (see the fuzz extra)")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_ingest.py"
    out = tmp_path / "fuzz.json"
    proc = subprocess.run([sys.executable, str(script), "--target", "image", "--seconds", "15", "--workdir",
                           str(tmp_path / "work"), "--json", str(out)], capture_output=True, text=True, timeout=180)
    [result] = json.loads(out.read_text())
    assert proc.returncode == 0 and result["failures"] == [], result
    assert result["executions"] > 100 and result["corpus_after"] > result["seeds"]  # it really ran and explored
