"""The command line: video summarize, search with moments, eval moments (with the IoU metric itself)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from video_media import CUTS, TRAIN

from media_factory import make_audio
from polymodal.cli import main
from polymodal.errors import InputError
from polymodal.eval.metrics import recall_at_iou, temporal_iou


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


# The first tests of a session pay for the model's ONNX export and the speech model's load; on a CPU shared
# with other jobs that takes a while, so these get more than the default limit.
@pytest.mark.timeout(300)
def test_video_summarize(scenes_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], lite_encoder) -> None:
    keyframes = tmp_path / "kf"
    assert main(["video", "summarize", str(scenes_video), "--json", "-m", "lite", "--keyframes", str(keyframes),
                 "--labels", "cat,coffee,rocket,dog,car"]) == 0
    out = _json(capsys)
    assert out["duration"] == pytest.approx(9.0, abs=0.15) and out["language"] == "en"
    scenes = out["scenes"]
    assert len(scenes) == 3
    for scene, (start, end) in zip(scenes, [(0.0, CUTS[0]), (CUTS[0], CUTS[1]), (CUTS[1], 9.0)]):
        assert abs(scene["start"] - start) <= 0.5 and abs(scene["end"] - end) <= 0.5
        assert scene["start"] <= scene["keyframe"] < scene["end"]
        assert Path(scene["keyframe_path"]).is_file()
    assert [s["tags"][0]["label"] for s in scenes] == ["cat", "coffee", "rocket"]
    assert "london" in scenes[1]["transcript"].lower() and "meeting" in scenes[2]["transcript"].lower()
    assert scenes[0]["transcript"] == ""
    assert main(["video", "summarize", str(scenes_video), "-m", "lite", "--no-speech"]) == 0
    text = capsys.readouterr().out
    assert "3 scenes" in text and "0:03.0-0:06.0" in text


def test_video_summarize_refuses_what_is_not_a_video(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      lite_encoder) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope" * 100)
    assert main(["video", "summarize", str(bad), "-m", "lite"]) == 4
    assert "cannot read media" in capsys.readouterr().err


def test_video_summarize_of_an_audio_file_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          lite_encoder) -> None:
    # The video decoder does not open WAV at all; "not a readable video file" would blame a good file.
    tone = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32) * 0.2
    # ... and an .mp4 holding only sound opens, but has no picture either
    for memo in (make_audio(tmp_path / "memo.wav", tone), make_audio(tmp_path / "memo.mp4", tone, codec="aac")):
        assert main(["video", "summarize", str(memo), "-m", "lite"]) == 4
        err = capsys.readouterr().err
        assert "audio file" in err and "polymodal transcribe" in err and "not a readable" not in err


@pytest.mark.timeout(300)
def test_index_and_search_cli_give_timed_moments(tmp_path: Path, scenes_video: Path, speech_spans,
                                                 capsys: pytest.CaptureFixture[str], lite_encoder) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    shutil.copy(scenes_video, folder / "v.mp4")
    lib = str(tmp_path / "lib")
    assert main(["index", str(folder), "--library", lib, "-m", "lite", "--json"]) == 0
    assert _json(capsys)["added"] == 1
    assert main(["search", TRAIN, "--library", lib, "--json", "-k", "2", "--modality", "speech"]) == 0
    hits = _json(capsys)
    start, end = speech_spans[TRAIN]
    assert hits[0]["kind"] == "video" and abs(hits[0]["start"] - start) <= 1 and abs(hits[0]["end"] - end) <= 1
    assert "london" in hits[0]["transcript"].lower() and hits[0]["segment"]
    assert main(["search", "a cat", "--library", lib, "--fusion", "rrf", "-k", "1"]) == 0
    assert "[0:00.0-0:03.0]" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["search", "a cat", "--library", lib, "--fusion", "max"])


def test_temporal_iou_hand_made_cases() -> None:
    assert temporal_iou((0, 10), (0, 10)) == 1.0
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((2, 4), (0, 10)) == pytest.approx(0.2)
    assert temporal_iou((0, 1), (2, 3)) == 0.0
    assert temporal_iou((0, 1), (1, 2)) == 0.0  # touching is not overlapping
    assert temporal_iou((5, 5), (0, 10)) == 0.0  # an empty prediction
    assert temporal_iou((3, 1), (0, 10)) == 0.0  # a reversed one
    ious = np.array([1.0, 0.7, 0.69, 0.5, 0.2, 0.0])
    assert recall_at_iou(ious, 0.5) == pytest.approx(4 / 6)
    assert recall_at_iou(ious, 0.7) == pytest.approx(2 / 6)
    with pytest.raises(InputError):
        recall_at_iou(ious, 0.0)


@pytest.mark.timeout(300)
def test_eval_moments(tmp_path: Path, scenes_video: Path, speech_spans, capsys: pytest.CaptureFixture[str],
                      lite_encoder) -> None:
    shutil.copy(scenes_video, tmp_path / "v.mp4")
    start, end = speech_spans[TRAIN]
    rows = [{"video": "v.mp4", "query": "a cat", "start": 0.0, "end": 3.0},
            {"video": "v.mp4", "query": "a rocket", "start": 6.0, "end": 9.0},
            {"video": "v.mp4", "query": TRAIN, "start": start, "end": end}]
    data = tmp_path / "moments.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = tmp_path / "report"
    assert main(["eval", "moments", "--data", str(data), "-m", "lite", "--json", "--report", str(report)]) == 0
    out = _json(capsys)
    assert out["queries"] == 3 and out["videos"] == 1 and out["failures"] == []
    assert out["recall"]["R@1 IoU0.5"] == 1.0
    assert 0.7 <= out["mean_iou"] <= 1.0
    page = (report / "report.md").read_text()
    assert "R@1 IoU0.7" in page and (report / "moments_iou.png").stat().st_size > 1000
    per_query = json.loads((report / "results.json").read_text())[0]["per_query"]
    assert [q["iou"] >= 0.5 for q in per_query] == [True, True, True]


def test_eval_moments_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], lite_encoder) -> None:
    data = tmp_path / "m.jsonl"
    for text, message in (('{"video": "v.mp4", "query": "x", "start": 0, "end": 1}', "not found"),
                          ('{"video": "v.mp4", "query": "x", "start": 2, "end": 1}', "start < end"),
                          ('{"video": "v.mp4", "query": "x"}', "missing start, end"),
                          ("not json", "is not JSON"), ("", "holds no queries")):
        data.write_text(text + "\n")
        assert main(["eval", "moments", "--data", str(data), "-m", "lite"]) == 4
        assert message in capsys.readouterr().err
