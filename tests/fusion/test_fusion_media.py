"""Rows with ``video`` and ``audio`` fields: real files through PyAV and faster-whisper, features in the
encoder's space, a silent file masked as missing, a broken one named by its line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from media_factory import Scene, make_video
from polymodal.cli import main
from polymodal.errors import InputError
from polymodal.fusion.data import read_dataset
from polymodal.fusion.features import FeatureCache, encode_rows, row_modalities
from speech_media import speak

pytestmark = pytest.mark.timeout(300)  # the first use of the speech model in a session loads it


@pytest.fixture(scope="module")
def media_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("media-rows")
    make_video(d / "cat.mp4", [Scene("cat", 2.0)], fps=5)
    make_video(d / "rocket.mp4", [Scene("rocket", 2.0)], fps=5)
    speak("Please open the window in the kitchen.", d / "kitchen.wav")
    speak("The red car is parked near the beach.", d / "beach.wav")
    import wave

    with wave.open(str(d / "silence.wav"), "wb") as w:  # a valid file with nothing said in it
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 16000 * 2)
    rows = [
        {"video": "cat.mp4", "audio": "kitchen.wav", "label": "a"},
        {"video": "rocket.mp4", "audio": "beach.wav", "label": "b"},
        {"video": "cat.mp4", "audio": "silence.wav", "label": "a"},
    ]
    (d / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


@pytest.mark.slow
def test_video_and_audio_features_live_in_the_encoders_space(media_rows: Path, lite, tmp_path: Path) -> None:
    ds = read_dataset(media_rows / "rows.jsonl", supported=row_modalities(lite))
    assert ds.modalities == ("audio", "video")
    feats, _, kept, bad = encode_rows(ds.rows, ds.modalities, lite, cache=FeatureCache(lite, tmp_path))
    assert kept == [0, 1, 2] and not bad
    audio, video = feats.features
    # video: meanP of sampled frames, so the cat clip sits nearer "a cat" than the rocket clip does
    texts = lite.encode_texts(["a photo of a cat", "a photo of a rocket"])
    sims = video[:2] @ texts.T
    assert sims[0, 0] > sims[0, 1] and sims[1, 1] > sims[1, 0], sims
    np.testing.assert_allclose(np.linalg.norm(video, axis=1), 1.0, atol=1e-5)
    # audio: what was said, embedded by the text tower; nearest to its own sentence
    said = lite.encode_texts(["open the window in the kitchen", "a red car parked near the beach"])
    s = audio[:2] @ said.T
    assert s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0], s
    # nothing said: the audio modality is missing for that row (masked), the video is present
    assert feats.present.tolist() == [[True, True], [True, True], [False, True]]
    # a second pass reads the cache: cat.mp4 is one content for two rows
    again, stats2, _, _ = encode_rows(ds.rows, ds.modalities, lite, cache=FeatureCache(lite, tmp_path))
    assert stats2.cached >= 4 and np.array_equal(again.features[1], video)


def test_a_broken_video_names_its_line_or_is_skipped(media_rows: Path, lite, tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    (tmp_path / "ok.mp4").write_bytes((media_rows / "cat.mp4").read_bytes())
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"video": "ok.mp4", "label": "a"}) + "\n"
                    + json.dumps({"video": "broken.mp4", "label": "b"}) + "\n")
    ds = read_dataset(rows, supported=row_modalities(lite))
    with pytest.raises(InputError, match=r"line 2 of .*broken\.mp4"):
        encode_rows(ds.rows, ds.modalities, lite, cache=FeatureCache(lite, tmp_path / "c1"))
    _, _, kept, bad = encode_rows(ds.rows, ds.modalities, lite, skip_bad=True,
                                      cache=FeatureCache(lite, tmp_path / "c2"))
    assert kept == [0] and [b.line for b in bad] == [2] and "broken.mp4" in bad[0].reason


@pytest.mark.slow
def test_train_accepts_video_and_audio_rows(media_rows: Path, tmp_path: Path, capsys) -> None:
    rows = media_rows / "train.jsonl"
    lines = []
    for i in range(12):  # the same files repeat: the cache makes every repeat free
        video, audio, label = ("cat.mp4", "kitchen.wav", "cat") if i % 2 == 0 else ("rocket.mp4", "beach.wav", "rocket")
        lines.append(json.dumps({"video": video, "audio": audio, "label": label}))
    rows.write_text("\n".join(lines) + "\n")
    code = main(["train", "--data", str(rows), "--fusion", "late", "--model", "lite", "--out",
                 str(tmp_path / "m"), "--epochs", "30", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    json.loads(out)
    config = json.loads((tmp_path / "m" / "fusion.json").read_text())
    assert config["fusion"]["modalities"] == ["audio", "video"]
    # Two held-out rows are too few to say much; the model must at least tell the two clips apart on every row,
    # which it cannot if the video or audio features were lost (zeros, or masked as missing).
    code = main(["predict", "--checkpoint", str(tmp_path / "m"), str(rows), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["missing_modalities"] == []
    assert [p["label"] for p in report["predictions"]] == ["cat", "rocket"] * 6
    assert report["metrics"]["accuracy"] == 1.0
