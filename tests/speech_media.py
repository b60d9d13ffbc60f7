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
