"""Video decoding on real files encoded with PyAV: metadata, shot boundaries, segments, frames, rotation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from video_media import CUTS, FPS

from media_factory import Scene, make_video
from polymodal.media.shots import Span, content_delta, find_cuts, hsv_feature, merge_cuts, split_shots
from polymodal.media.video import analyse_video, probe_video


def test_cuts_found_within_half_a_second(scenes_video: Path) -> None:
    a = analyse_video(scenes_video)
    assert len(a.cuts) == len(CUTS)
    for found, truth in zip(a.cuts, CUTS):
        assert abs(found - truth) <= 0.5, a.cuts
    assert [(round(s.start, 2), round(s.end, 2)) for s in a.shots] == [(0.0, a.cuts[0]), (a.cuts[0], a.cuts[1]),
                                                                       (a.cuts[1], round(a.info.duration, 2))]


def test_metadata(scenes_video: Path) -> None:
    info = probe_video(scenes_video)
    assert info.duration == pytest.approx(9.0, abs=0.15)
    assert info.fps == pytest.approx(FPS)
    assert (info.width, info.height, info.codec, info.rotation) == (320, 240, "h264", 0)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.container.startswith("mov,mp4")


def test_segments_sample_frames_inside_their_segment(scenes_video: Path) -> None:
    a = analyse_video(scenes_video, frames_per_segment=3)
    assert len(a.segments) == 3
    for seg in a.segments:
        assert len(seg.frames) == 3
        assert all(seg.start - 0.2 <= t < seg.end + 0.2 for t in seg.frame_times), (seg.start, seg.end, seg.frame_times)
        assert all(img.size == (320, 240) and img.mode == "RGB" for img in seg.images())
    # Not every frame is decoded: 90 frames exist; keyframes plus the stretches around cuts are far fewer
    # only when keyframes sit on the cuts, so just check the accounting is sane.
    assert 0 < a.decoded <= 2 * 90


def test_long_shot_split_into_segments_of_at_most_n_seconds(tmp_path: Path) -> None:
    path = make_video(tmp_path / "long.mp4", [Scene("cat", 7), Scene("rocket", 2)], fps=FPS)
    a = analyse_video(path, max_segment=3.0)
    assert len(a.cuts) == 1 and abs(a.cuts[0] - 7.0) <= 0.5
    cat = [s for s in a.segments if s.shot == 0]
    assert len(cat) == 3  # 7 s at most 3 s each: three pieces of ~2.33 s
    assert all(s.end - s.start <= 3.0 + 1e-6 for s in a.segments)
    assert cat[0].start == 0.0 and cat[-1].end == pytest.approx(a.cuts[0])


def test_frames_come_from_seeking_when_keyframes_are_sparse(tmp_path: Path) -> None:
    # One keyframe only (gop longer than the video, scene-cut keyframes off): the samples must be sought.
    path = make_video(tmp_path / "sparse.mp4", [Scene("cat", 4)], fps=FPS, gop=1000, x264_params="scenecut=0")
    a = analyse_video(path, max_segment=2.0, frames_per_segment=2)
    assert a.keyframes == 1
    times = [t for s in a.segments for t in s.frame_times]
    assert len(times) == 4 and all(abs(t - want) <= 0.25 for t, want in zip(times, (0.5, 1.5, 2.5, 3.5))), times


def test_rotated_phone_video_is_turned_upright(tmp_path: Path) -> None:
    # Stored 320x240 with the top half red, bottom half blue, and a display matrix turning it 90 degrees
    # counterclockwise: shown upright it is 240x320 with red on the left.
    red_top = np.zeros((240, 320, 3), np.uint8)
    red_top[:120, :, 0] = 255
    red_top[120:, :, 2] = 255
    path = make_video(tmp_path / "phone.mp4", [Scene("cat", 1)], fps=FPS, rotation=90, pixels=red_top)
    a = analyse_video(path)
    assert a.info.rotation == 90 and (a.info.width, a.info.height) == (240, 320)
    frame = np.asarray(a.segments[0].images()[0])
    assert frame.shape[:2] == (320, 240)
    left, right = frame[:, :100].mean(axis=(0, 1)), frame[:, 140:].mean(axis=(0, 1))
    assert left[0] > 200 and left[2] < 60 and right[2] > 200 and right[0] < 60


def test_variable_frame_rate(tmp_path: Path) -> None:
    # Frame durations alternate 20 ms / 60 ms (mean 25 fps); the cut is at 3 s of presentation time.
    path = make_video(tmp_path / "vfr.mkv", [Scene("coffee", 3), Scene("rocket", 3)], fps=25,
                      durations=(Fraction(2, 100), Fraction(6, 100)))
    a = analyse_video(path)
    assert len(a.cuts) == 1 and abs(a.cuts[0] - 3.0) <= 0.5
    assert a.info.duration == pytest.approx(6.0, abs=0.1)
    assert a.info.fps == pytest.approx(25, rel=0.1)  # Matroska declares its 1 ms timebase, 1000 "fps"


def test_frame_rate_of_a_file_that_declares_its_timebase(tmp_path: Path) -> None:
    # Phones and screen recorders write irregular frame times in a 1 ms timebase; the stream's declared
    # average rate is then 1000 "fps". The frame rate reported is the frames shown per second.
    import av

    path = tmp_path / "screen.mkv"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=1000)
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        t, frames = 0, 0
        while t < 4000:
            pic = np.full((120, 160, 3), 40 if t < 2000 else 200, np.uint8)
            frame = av.VideoFrame.from_ndarray(pic, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            out.mux(vs.encode(frame))
            frames += 1
            t += int(rng.choice([20, 40, 100, 200]))
        out.mux(vs.encode())
    for info in (probe_video(path), analyse_video(path).info):
        assert info.fps == pytest.approx(frames / info.duration, rel=0.02) and info.fps < 60, info


def test_4k_frames_come_back_small(tmp_path: Path) -> None:
    path = make_video(tmp_path / "uhd.mp4", [Scene("cat", 0.5), Scene("rocket", 0.5)], fps=10, size=(3840, 2160),
                      preset="ultrafast")
    a = analyse_video(path, frame_size=256)
    assert (a.info.width, a.info.height) == (3840, 2160)
    assert all(min(img.size) == 256 for s in a.segments for img in s.images())


def test_other_containers(tmp_path: Path) -> None:
    for name, codec in (("clip.webm", "libvpx-vp9"), ("clip.mkv", "libx264"), ("clip.avi", "mpeg4"),
                        ("clip.mov", "libx264"), ("clip.m4v", "libx264")):
        path = make_video(tmp_path / name, [Scene("cat", 1.5), Scene("rocket", 1.5)], fps=FPS, codec=codec)
        a = analyse_video(path)
        assert len(a.cuts) == 1 and abs(a.cuts[0] - 1.5) <= 0.5, (name, a.cuts)
        assert a.info.fps == pytest.approx(FPS, rel=0.05), (name, a.info.fps)


# -- the shot detector on hand-made frames ---------------------------------------------------------------------


def _flat(rgb: tuple[int, int, int]) -> np.ndarray:
    return hsv_feature(np.full((36, 64, 3), rgb, np.uint8))


def test_find_cuts_on_hand_made_frames() -> None:
    red, green = _flat((200, 30, 30)), _flat((30, 200, 30))
    assert content_delta(red, red) == 0.0 and content_delta(red, green) > 27
    times = [i * 0.1 for i in range(30)]
    feats = [red] * 10 + [green] * 10 + [red] * 10
    assert find_cuts(times, feats) == pytest.approx([1.0, 2.0])
    # A two-frame flash is one cut of the two, not two cuts 0.1 s apart.
    flash = [red] * 10 + [green] * 2 + [red] * 18
    assert len(find_cuts(times, flash)) == 1


def test_merge_and_split() -> None:
    assert merge_cuts([5.0, 0.2, 3.0, 3.2, 9.9], 0.0, 10.0) == [3.0, 5.0]
    spans = split_shots([Span(0.0, 25.0, 0), Span(25.0, 30.0, 1)], 10.0)
    assert [(round(s.start, 3), round(s.end, 3), s.shot) for s in spans] == [
        (0.0, 8.333, 0), (8.333, 16.667, 0), (16.667, 25.0, 0), (25.0, 30.0, 1)]
