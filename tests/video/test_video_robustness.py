"""Broken, hostile and odd media: each one a recorded failure with its reason, never a crash or a hang."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from media_factory import Scene, espeak, make_audio, make_video
from polymodal.errors import MediaDecodeError, MediaTimeoutError, NoVideoError
from polymodal.media.video import analyse_video


def _reason(path: Path) -> str:
    with pytest.raises(MediaDecodeError) as info:
        analyse_video(path)
    return info.value.reason


def test_zero_length_garbage_and_truncated(tmp_path: Path, scenes_video: Path) -> None:
    (tmp_path / "zero.mp4").write_bytes(b"")
    assert "empty" in _reason(tmp_path / "zero.mp4")
    (tmp_path / "garbage.mkv").write_bytes(os.urandom(4096))
    assert "not a readable video file" in _reason(tmp_path / "garbage.mkv")
    data = scenes_video.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: gone
    assert "not a readable video file" in _reason(tmp_path / "cut.mp4")
    assert "no such file" in _reason(tmp_path / "missing.mp4")


def test_truncated_matroska_decodes_what_is_there(tmp_path: Path) -> None:
    # Matroska streams: a cut file still holds its first seconds, which are indexed as what they are.
    path = make_video(tmp_path / "whole.mkv", [Scene("cat", 2), Scene("rocket", 2)], fps=10)
    data = path.read_bytes()
    cut = tmp_path / "half.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    a = analyse_video(cut)
    assert 1.0 < a.info.duration < 4.0 and a.segments


def test_audio_only_file_has_no_video_track(tmp_path: Path) -> None:
    import numpy as np

    path = make_audio(tmp_path / "tone.m4a", np.sin(np.linspace(0, 2000, 16000)).astype(np.float32) * 0.2)
    with pytest.raises(NoVideoError, match="no video track"):
        analyse_video(path)


def test_mp4_holding_only_sound_is_indexed_as_audio(tmp_path: Path, lite_encoder) -> None:
    from polymodal.library import Library

    folder = tmp_path / "f"
    folder.mkdir()
    # a recording or podcast saved as .mp4: a video container, no picture
    make_audio(folder / "podcast.mp4", espeak("The train to London leaves at nine."), codec="aac")
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([folder])
    assert report.added == 1 and report.failed == 0, report.failures
    hit = lib.search("the train to London", k=1)[0]
    assert hit.kind == "audio" and hit.path.endswith("podcast.mp4") and "london" in (hit.transcript or "").lower()
    assert lib.media_info(hit.id)["shots"] == 0


def test_playlists_and_other_protocols_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    hls = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n" + f"file://{secret}\n#EXTINF:10,\nhttp://127.0.0.1:9/x.ts\n"
    for name in ("playlist.mp4", "playlist.mkv", "list.mov"):
        (tmp_path / name).write_text(hls)
        assert "not a readable video file" in _reason(tmp_path / name)
    (tmp_path / "concat.mp4").write_text(f"ffconcat version 1.0\nfile '{secret}'\n")
    assert "not a readable video file" in _reason(tmp_path / "concat.mp4")
    with pytest.raises(MediaDecodeError, match="only local files"):
        analyse_video("http://127.0.0.1:9/video.mp4")


def test_time_limit_kills_the_decoder(tmp_path: Path, scenes_video: Path) -> None:
    start = time.monotonic()
    with pytest.raises(MediaTimeoutError, match="time limit"):
        analyse_video(scenes_video, time_limit=0.05)
    assert time.monotonic() - start < 5


def test_video_without_sound_is_indexed_by_picture(tmp_path: Path, lite_encoder) -> None:
    from polymodal.library import Library

    folder = tmp_path / "f"
    folder.mkdir()
    make_video(folder / "silent.mp4", [Scene("cat", 2), Scene("coffee", 2)], fps=10)
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    report = lib.add([folder])  # speech is on: a video with no audio track simply has no speech segments
    assert report.added == 1 and report.failed == 0
    hit = lib.search("a cat", k=1)[0]
    assert hit.kind == "video" and hit.transcript is None and abs(hit.end - 2.0) <= 0.5


def test_video_whose_speech_is_lost_is_indexed_with_a_warning(tmp_path: Path, lite_encoder,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np

    import polymodal.speech
    from polymodal.library import Library

    def too_slow(path: str, **_: object) -> None:
        raise MediaTimeoutError(path, 1.0, stage="transcribing")

    monkeypatch.setattr(polymodal.speech, "transcribe", too_slow)
    folder = tmp_path / "f"
    folder.mkdir()
    tone = np.sin(np.linspace(0, 2000, 32000)).astype(np.float32) * 0.2
    make_video(folder / "talk.mp4", [Scene("cat", 2)], fps=10, audio=tone)
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    with caplog.at_level("WARNING", logger="polymodal"):
        report = lib.add([folder])
    # Not a failure (the pictures are searchable), but not silent either: the speech is missing.
    assert report.added == 1 and report.failed == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("talk.mp4" in m and "speech was not transcribed" in m and "transcribing took longer" in m
               for m in warned), warned
    # ... and said where a user looks, not only in a log: the run's report and the library's status
    assert [(Path(f.path).name, "transcribing took longer" in f.reason) for f in report.speech_failures] == \
        [("talk.mp4", True)]
    assert [Path(f.path).name for f in lib.status().speech_failures] == ["talk.mp4"]


def test_broken_media_in_a_folder_are_failures_and_the_rest_is_indexed(tmp_path: Path, lite_encoder,
                                                                     scenes_video: Path) -> None:
    from polymodal.library import Library

    folder = tmp_path / "f"
    folder.mkdir()
    shutil.copy(scenes_video, folder / "good.mp4")
    (folder / "zero.webm").write_bytes(b"")
    (folder / "noise.avi").write_bytes(os.urandom(2048))
    (folder / "noise.mp3").write_bytes(os.urandom(2048))
    (folder / "hls.m4v").write_text("#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/a.ts\n")
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.media_options = type(lib.media_options)(speech=False)
    report = lib.add([folder])
    assert report.added == 1
    reasons = {Path(f.path).name: f.reason for f in report.failures}
    assert set(reasons) == {"zero.webm", "noise.avi", "noise.mp3", "hls.m4v"}
    assert all(reasons.values())
    # Unchanged broken files are not retried, and stay listed.
    again = lib.add([folder])
    assert again.failed == 4 and again.added == 0
