"""Audio decoding with PyAV in a killable child: every supported format, and bad input as typed errors."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from polymodal.errors import MediaDecodeError, MediaTimeoutError, NoAudioError
from polymodal.media.audio import AUDIO_EXTENSIONS, load_audio, probe_audio
from polymodal.media.sandbox import run_worker
from speech_media import AUDIO_ENCODINGS, VIDEO_ENCODINGS, encode_audio, make_video, silence, write_wav


def _envelope(x: np.ndarray, rate: int = 16000) -> np.ndarray:
    hop = rate // 50  # 20 ms frames
    n = len(x) // hop
    return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1))


def _same_sound(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation of the loudness envelopes within ±120 ms (codecs add a little delay)."""
    ea, eb = _envelope(a), _envelope(b)
    best = -1.0
    for shift in range(-6, 7):
        x, y = (ea[shift:], eb) if shift >= 0 else (ea, eb[-shift:])
        n = min(len(x), len(y))
        best = max(best, float(np.corrcoef(x[:n], y[:n])[0, 1]))
    return best


@pytest.fixture(scope="module")
def phrase(speech_clip) -> np.ndarray:
    a, b = speech_clip.phrase_1
    return speech_clip.samples[round((a - 0.2) * 16000): round((b + 0.2) * 16000)]


def test_every_audio_extension_has_an_encoding_under_test():
    assert set(AUDIO_EXTENSIONS) == set(AUDIO_ENCODINGS)


@pytest.mark.parametrize("ext", sorted(AUDIO_ENCODINGS))
def test_audio_formats_decode_to_16k_mono(tmp_path, phrase, ext):
    path = encode_audio(phrase, tmp_path / f"phrase{ext}")
    decoded = load_audio(path)
    assert decoded.sample_rate == 16000
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert decoded.info.duration == pytest.approx(len(phrase) / 16000, abs=0.15)
    assert _same_sound(decoded.samples, phrase) > 0.9
    codec = AUDIO_ENCODINGS[ext][1]
    assert decoded.info.codec.startswith(codec.removeprefix("lib").removesuffix("lame"))
    assert decoded.info.sample_rate == AUDIO_ENCODINGS[ext][2]


@pytest.mark.parametrize("ext", sorted(VIDEO_ENCODINGS))
def test_video_sound_tracks_decode(tmp_path, phrase, ext):
    path = make_video(tmp_path / f"clip{ext}", phrase)
    decoded = load_audio(path)
    assert decoded.info.duration == pytest.approx(len(phrase) / 16000, abs=0.15)
    assert _same_sound(decoded.samples, phrase) > 0.9


def test_probe_reads_metadata_without_decoding(tmp_path, phrase):
    stereo_48k = tmp_path / "s.flac"
    import av

    with av.open(str(stereo_48k), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=48000)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 48000 * 2), np.int16), format="s16", layout="stereo")
        frame.sample_rate = 48000  # packed s16 stereo: (1, channels * samples)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    info = probe_audio(stereo_48k)
    assert (info.codec, info.sample_rate, info.channels, info.container) == ("flac", 48000, 2, "flac")
    assert info.duration == pytest.approx(2.0, abs=0.01)
    decoded = load_audio(stereo_48k)  # mixed down and resampled
    assert len(decoded.samples) == pytest.approx(32000, abs=160)


def test_video_without_audio_raises_no_audio(tmp_path):
    path = make_video(tmp_path / "mute.mkv", None)
    with pytest.raises(NoAudioError, match=r"mute\.mkv.*no audio track"):
        load_audio(path)
    with pytest.raises(NoAudioError):
        probe_audio(path)


@pytest.mark.parametrize("ext", [".wav", ".mp3", ".flac", ".m4a"])
def test_truncated_files_are_errors(tmp_path, phrase, ext):
    whole = encode_audio(phrase, tmp_path / f"whole{ext}").read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MediaDecodeError, match=r"cut\.") as info:
        load_audio(cut)
    assert type(info.value) is MediaDecodeError
    assert any(k in info.value.reason for k in ("truncated", "corrupt", "not a readable"))


def test_bad_inputs_are_typed_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(1).bytes(20000))
    text = tmp_path / "notes.m4a"
    text.write_text("not audio at all\n" * 100)
    cases = {
        empty: "empty",
        noise: "not a readable",
        text: "not a readable",
        tmp_path / "missing.wav": "no such file",
        tmp_path: "directory",
        "http://127.0.0.1:9/a.wav": "URLs",
    }
    for path, reason in cases.items():
        with pytest.raises(MediaDecodeError, match=reason):
            load_audio(path)


def test_playlists_and_concat_lists_are_refused(tmp_path, phrase, monkeypatch):
    write_wav(tmp_path / "a.wav", phrase)
    # FFmpeg's concat demuxer would open this and read a.wav through it; polymodal allows no such demuxer
    listing = tmp_path / "list.wav"
    listing.write_text("ffconcat version 1.0\nfile 'a.wav'\nfile 'a.wav'\n")
    with pytest.raises(MediaDecodeError, match="playlists and concat lists are refused"):
        load_audio(listing)
    playlist = tmp_path / "live.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\na.wav\n#EXT-X-ENDLIST\n")
    with pytest.raises(MediaDecodeError):
        load_audio(playlist)
    # protocol prefixes are never interpreted: this names a file called "concat:a.wav|a.wav", which is missing
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MediaDecodeError, match="no such file"):
        load_audio("concat:a.wav|a.wav")


def _decoders_of(path: Path) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"polymodal.media.worker\0audio\0" in cmdline and str(path).encode() in cmdline:
                pids.append(int(entry))
    return pids


def test_a_decode_past_its_time_limit_is_killed(tmp_path):
    long = write_wav(tmp_path / "long.wav", np.tile(silence(1.0) + 0.1, 600))  # ten minutes
    with pytest.raises(MediaTimeoutError, match=r"time limit of 0\.05 s") as info:
        load_audio(long, time_limit=0.05)
    assert info.value.limit == 0.05
    assert _decoders_of(long) == []  # the worker is gone, not left running
    assert load_audio(long, time_limit=60).info.duration == pytest.approx(600.0)


def test_an_interrupted_decode_leaves_no_decoder_running(tmp_path, monkeypatch):
    long = write_wav(tmp_path / "long.wav", np.tile(silence(1.0) + 0.1, 600))
    real, waited = subprocess.Popen.communicate, []

    def ctrl_c(self, *args, **kwargs):
        if not waited:  # the first wait for the child is interrupted, as by Ctrl-C; the rest are real
            waited.append(self)
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "communicate", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        load_audio(long)
    assert waited[0].returncode == -signal.SIGKILL and _decoders_of(long) == []


def test_a_decoder_killed_by_a_signal_says_so(tmp_path):
    long = write_wav(tmp_path / "long.wav", np.tile(silence(1.0) + 0.1, 600))

    def oom_killer() -> None:  # kills the child the moment it shows up, as the kernel's OOM killer would
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for pid in _decoders_of(long):
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=oom_killer)
    killer.start()
    try:
        with pytest.raises(MediaDecodeError, match=r"the decoder failed \(the decoder was killed by signal 9\)"):
            load_audio(long, time_limit=60)
    finally:
        killer.join()


def test_a_decoder_that_raises_is_reported_by_its_last_words(tmp_path, phrase):
    path = write_wav(tmp_path / "a.wav", phrase)
    with pytest.raises(MediaDecodeError, match=r"the decoder failed \(KeyError: 'nope'\)"):
        run_worker("nope", path, {}, time_limit=60)  # the child's traceback ends in the unknown kind


def test_the_decoder_ignores_modules_beside_the_media(tmp_path, phrase, monkeypatch):
    """A folder of downloads may hold an ``av.py``: the decoding child must not import it from its cwd."""
    write_wav(tmp_path / "a.wav", phrase)
    (tmp_path / "av.py").write_text("raise SystemExit('imported the av.py from the working directory')\n")
    monkeypatch.chdir(tmp_path)
    assert load_audio("a.wav").info.duration == pytest.approx(len(phrase) / 16000, abs=0.01)


def test_odd_file_names_are_plain_local_files(tmp_path, phrase):
    odd = tmp_path / "we ird" / "naïve ?#%20 file:x.wav"
    odd.parent.mkdir()
    write_wav(odd, phrase)
    assert load_audio(odd).info.duration == pytest.approx(len(phrase) / 16000, abs=0.01)


def test_audio_longer_than_the_cap_is_refused(tmp_path, phrase):
    path = write_wav(tmp_path / "long.wav", np.tile(phrase, 3))
    with pytest.raises(MediaDecodeError, match="more than 2 s of audio"):
        load_audio(path, max_duration=2.0)
    assert load_audio(path, max_duration=60).info.duration == pytest.approx(3 * len(phrase) / 16000, abs=0.01)
