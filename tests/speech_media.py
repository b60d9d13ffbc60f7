"""Real speech for tests: espeak-ng (a Debian package) speaking a text into a 16 kHz mono WAV."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np


def speak(text: str, path: Path, *, voice: str = "en-us", rate: int = 150) -> Path:
    """Write ``text`` spoken by espeak-ng to ``path`` as a 16 kHz mono 16-bit WAV, and return ``path``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed; install the Debian package: apt-get install -y espeak-ng")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".espeak.wav")
    subprocess.run([exe, "-v", voice, "-s", str(rate), "-w", str(raw), text], check=True, capture_output=True)
    # espeak-ng writes 22050 Hz; resample to the 16 kHz speech models read so the WAV is what tests expect.
    with wave.open(str(raw), "rb") as src:
        rate_in = src.getframerate()
        data = np.frombuffer(src.readframes(src.getnframes()), dtype=np.int16).astype(np.float32)
        if src.getnchannels() > 1:
            data = data.reshape(-1, src.getnchannels()).mean(axis=1)
    raw.unlink()
    write_wav(path, _resample(data, rate_in, 16000) / 32768.0, 16000)
    return path


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out or len(x) == 0:
        return x
    n_out = round(len(x) * rate_out / rate_in)
    return np.interp(np.linspace(0, len(x) - 1, n_out), np.arange(len(x)), x).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """Write mono float samples in [-1, 1] as a 16-bit PCM WAV."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return Path(path)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.float32)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float samples and the rate of a 16-bit PCM WAV written by speak() or write_wav()."""
    with wave.open(str(path), "rb") as src:
        data = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        return data, src.getframerate()


#: (container format, audio codec, codec rate, extra codec options) for each audio file type polymodal reads
AUDIO_ENCODINGS = {
    ".wav": ("wav", "pcm_s16le", 16000, {}),
    ".mp3": ("mp3", "libmp3lame", 16000, {}),
    ".m4a": ("ipod", "aac", 16000, {}),
    ".flac": ("flac", "flac", 16000, {}),
    # FFmpeg's own Vorbis encoder is marked experimental and only encodes stereo
    ".ogg": ("ogg", "vorbis", 16000, {"strict": "experimental"}),
    ".opus": ("ogg", "libopus", 48000, {}),
}


def _encode_track(container, stream, samples: np.ndarray, rate: int) -> None:  # type: ignore[no-untyped-def]
    import av

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = rate
    ctx = stream.codec_context
    resampler = av.AudioResampler(format=ctx.format.name, layout=ctx.layout.name, rate=ctx.sample_rate,
                                  frame_size=ctx.frame_size or 1024)
    for out in [*resampler.resample(frame), *resampler.resample(None)]:
        for packet in stream.encode(out):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _add_audio_stream(container, codec: str, rate: int, options: dict[str, str]):  # type: ignore[no-untyped-def]
    stream = container.add_stream(codec, rate=rate, options=dict(options))
    stream.layout = "stereo" if codec == "vorbis" else "mono"
    return stream


def encode_audio(samples: np.ndarray, path: Path, rate: int = 16000) -> Path:
    """Encode mono float samples with PyAV in the format ``path``'s extension names (AUDIO_ENCODINGS)."""
    import av

    fmt, codec, codec_rate, options = AUDIO_ENCODINGS[Path(path).suffix]
    with av.open(str(path), "w", format=fmt) as out:
        _encode_track(out, _add_audio_stream(out, codec, codec_rate, options), samples, rate)
    return Path(path)


#: (container format, video codec, audio codec) for the video containers polymodal reads
VIDEO_ENCODINGS = {
    ".mp4": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".m4v": ("mp4", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "libopus"),
    ".webm": ("webm", "libvpx", "libopus"),
    ".avi": ("avi", "mpeg4", "libmp3lame"),
}


def make_video(path: Path, samples: np.ndarray | None, rate: int = 16000, *, fps: int = 10,
               size: tuple[int, int] = (64, 48), seconds: float | None = None) -> Path:
    """A small video (changing grey frames) with ``samples`` as its audio track, or none when None."""
    import av

    fmt, vcodec, acodec = VIDEO_ENCODINGS[Path(path).suffix]
    if seconds is None:
        seconds = len(samples) / rate if samples is not None else 2.0
    with av.open(str(path), "w", format=fmt) as out:
        video = out.add_stream(vcodec, rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        audio = None
        if samples is not None:
            audio_rate = 48000 if acodec == "libopus" else 16000
            audio = _add_audio_stream(out, acodec, audio_rate, {})
        for i in range(max(1, round(seconds * fps))):
            img = np.full((size[1], size[0], 3), (i * 7) % 256, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None and samples is not None:
            _encode_track(out, audio, samples, rate)
    return Path(path)
