"""Test media made on the spot: videos whose scenes are real photos with cuts at known times, and speech.

Videos are encoded with PyAV (libx264 for the picture, AAC for the sound); speech comes from espeak-ng.
Every scene is a real photo (scikit-image's cat, coffee, rocket, ...) slowly panned, so the picture moves
inside a shot the way filmed footage does while a cut remains a hard change of content.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000

SKIMAGE_PHOTOS = {"cat": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg", "astronaut": "astronaut.png",
                  "horse": "horse.png", "motorbike": "motorcycle_left.png"}


def photo(name: str) -> Path:
    import skimage

    path = Path(skimage.__file__).parent / "data" / SKIMAGE_PHOTOS[name]
    assert path.exists(), path
    return path


@dataclass(frozen=True)
class Scene:
    photo: str  # a key of SKIMAGE_PHOTOS
    seconds: float


@dataclass(frozen=True)
class Speech:
    text: str
    start: float  # seconds into the video where the phrase begins


def espeak(text: str, *, voice: str = "en-us", rate: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 16 kHz mono float32 samples."""
    import av

    exe = shutil.which("espeak-ng")
    assert exe, "espeak-ng is not installed (apt-get install espeak-ng)"
    wav = subprocess.run([exe, "-v", voice, "-s", str(rate), "--stdout", text], check=True,
                         capture_output=True).stdout
    import io

    with av.open(io.BytesIO(wav)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = [np.asarray(f.to_ndarray()).reshape(-1)
                  for frame in container.decode(audio=0) for f in resampler.resample(frame)]
        chunks += [np.asarray(f.to_ndarray()).reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32)


def speech_track(phrases: Sequence[Speech], seconds: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A silent track of ``seconds`` with each phrase placed at its start; and each phrase's (start, end)."""
    track = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    spans = []
    for p in phrases:
        samples = espeak(p.text)
        at = int(p.start * SAMPLE_RATE)
        end = min(len(track), at + len(samples))
        track[at:end] += samples[: end - at]
        spans.append((p.start, end / SAMPLE_RATE))
    return track, spans


def _frames_for(scene: Scene, size: tuple[int, int], fps: int):
    """The scene's frames: the photo cropped to the frame's aspect and slowly panned across."""
    from PIL import Image

    w, h = size
    img = Image.open(photo(scene.photo)).convert("RGB")
    scale = max(w * 1.1 / img.width, h * 1.1 / img.height)
    big = img.resize((max(w + 2, round(img.width * scale)), max(h + 2, round(img.height * scale))),
                     Image.Resampling.BILINEAR)
    arr = np.asarray(big)
    n = max(1, round(scene.seconds * fps))
    span_x, span_y = arr.shape[1] - w, arr.shape[0] - h
    for i in range(n):
        t = i / max(1, n - 1)
        x, y = int(t * span_x), int(t * span_y / 2)
        yield np.ascontiguousarray(arr[y: y + h, x: x + w])


def make_video(path: Path, scenes: Sequence[Scene], *, size: tuple[int, int] = (320, 240), fps: int = 25,
               speech: Sequence[Speech] = (), audio: np.ndarray | None = None, rotation: int | None = None,
               gop: int | None = None, codec: str = "libx264", audio_codec: str = "aac", preset: str = "veryfast",
               x264_params: str | None = None, pixels: np.ndarray | None = None,
               durations: Sequence[Fraction] | None = None) -> Path:
    """Encode ``scenes`` back to back (cuts at their cumulative durations), with speech muxed in when given.

    ``rotation`` stores a display matrix (as phones do) instead of turning the pixels; ``gop`` sets the
    keyframe interval (x264's default is 250 frames with extra keyframes at detected scene cuts);
    ``pixels`` replaces every frame by one fixed picture; ``durations`` gives frames these durations in
    turn (variable frame rate; their mean should be 1/fps so each scene keeps its length).
    """
    import av

    seconds = sum(s.seconds for s in scenes)
    if speech and audio is None:
        audio, _ = speech_track(speech, seconds)
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height = size
        v.pix_fmt = "yuv420p"
        opts = {"preset": preset, "tune": "stillimage"} if codec == "libx264" else {}
        if x264_params:
            opts["x264-params"] = x264_params
        if durations:
            v.time_base = Fraction(1, 1000)
            v.codec_context.time_base = Fraction(1, 1000)
        if gop is not None:
            v.codec_context.gop_size = gop
        v.options = opts
        if rotation is not None:
            v.set_display_rotation(rotation)
        a = None
        if audio is not None:
            a = out.add_stream(audio_codec, rate=SAMPLE_RATE)
            a.layout = "mono"
        n = 0
        t = Fraction(0)
        for scene in scenes:
            for moving in _frames_for(scene, size, fps):
                frame = av.VideoFrame.from_ndarray(moving if pixels is None else pixels, format="rgb24")
                if durations:
                    frame.pts = int(t * 1000)
                    frame.time_base = Fraction(1, 1000)
                    t += durations[n % len(durations)]
                else:
                    frame.pts = n
                    frame.time_base = Fraction(1, fps)
                n += 1
                for packet in v.encode(frame):
                    out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
        if a is not None and audio is not None:
            _encode_audio_at(out, a, audio, SAMPLE_RATE)
    return path


def make_audio(path: Path, samples: np.ndarray, codec: str | None = None) -> Path:
    """An audio-only file (format from the suffix: .wav, .mp3, .flac, .ogg, .m4a, .opus)."""
    import av

    codec = codec or {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".flac": "flac", ".ogg": "libopus",
                      ".m4a": "aac", ".opus": "libopus"}[path.suffix.lower()]
    rate = 48_000 if codec == "libopus" else SAMPLE_RATE  # Opus encodes 8, 12, 16, 24 or 48 kHz; 48 is the usual
    if rate != SAMPLE_RATE:
        samples = np.interp(np.arange(0, len(samples) * rate // SAMPLE_RATE) * SAMPLE_RATE / rate,
                            np.arange(len(samples)), samples).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        _encode_audio_at(out, stream, samples, rate)
    return path


def _encode_audio_at(out, stream, samples: np.ndarray, rate: int) -> None:
    import av

    chunk = 1024
    formats = stream.codec_context.codec.audio_formats
    resampler = av.AudioResampler(format=formats[0].name if formats else "fltp", layout="mono", rate=rate)
    pts = 0
    for i in range(0, len(samples), chunk):
        block = np.ascontiguousarray(samples[i: i + chunk].reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = pts
        pts += block.shape[1]
        for f in resampler.resample(frame):
            for packet in stream.encode(f):
                out.mux(packet)
    for f in resampler.resample(None):
        for packet in stream.encode(f):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
