"""Audio decoding with PyAV (no ffmpeg binary): any audio file or a video's audio track to 16 kHz mono float32.

Decoding untrusted media is the riskiest thing polymodal does (FFmpeg's demuxers are large C code, and a
hostile file can make one loop or crawl), so it never happens in the caller's process: a child process
(``python -m polymodal.media.audio``) decodes and streams the samples back, and is killed when the time
limit passes. A killed child cannot leave the caller hung, whatever state FFmpeg was in.

Only local files are opened: the path is handed to FFmpeg as ``file:/abs/path`` (so ``http://``,
``concat:``, ``subfile,`` and other protocol prefixes are never interpreted), nested references are limited
to the ``file`` protocol, and only the demuxers of the formats polymodal ingests are allowed (no HLS or
concat playlists, which would make FFmpeg follow references inside the file).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from polymodal.errors import MediaDecodeError, MediaTimeoutError, NoAudioError

#: the rate Whisper (and most speech models) read
SAMPLE_RATE = 16000
#: seconds a decode may run when the caller gives no limit (a two-hour podcast decodes in well under a minute)
DEFAULT_TIME_LIMIT = 300.0
#: seconds of audio decoded at most: the whole track is held in memory as float32 (230 MB an hour), so a
#: hostile header claiming days of audio must not be believed to the end
DEFAULT_MAX_DURATION = 4 * 3600.0
#: file extensions treated as audio files
AUDIO_EXTENSIONS = (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus")
#: FFmpeg demuxers allowed to open a file: the containers of the audio and video formats polymodal ingests.
#: Playlist demuxers (hls, concat, ...) are left out on purpose: they follow references inside the file.
ALLOWED_DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,wav,w64,mp3,flac,ogg,aac,aiff,caf,asf,mpegts,mpeg"
)
#: the directory holding the polymodal package, so the decoding child imports this same copy
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: a file whose header promises this much more audio than can be decoded is reported as truncated
_TRUNCATION_SLACK = 0.1  # fraction of the declared duration
_TRUNCATION_MIN_S = 0.5


@dataclass
class AudioInfo:
    """What the container says about its first audio track, and what was decoded from it."""

    duration: float  #: seconds of decoded audio (declared duration when only probed)
    codec: str  #: FFmpeg codec name, e.g. "pcm_s16le", "aac", "opus"
    sample_rate: int  #: the track's own rate, before resampling
    channels: int  #: the track's own channel count, before the mono mix-down
    container: str  #: FFmpeg demuxer name, e.g. "wav", "mov,mp4,m4a,3gp,3g2,mj2"
    declared_duration: float | None = None  #: what the container header claims, when it says


@dataclass
class DecodedAudio:
    samples: Any  #: numpy float32 array, mono, in [-1, 1]
    sample_rate: int
    info: AudioInfo


def _check_path(path: str | os.PathLike[str]) -> str:
    """The absolute path of a readable local file, or MediaDecodeError saying why not."""
    raw = os.fspath(path)
    source = raw
    if "://" in raw:
        raise MediaDecodeError(source, "only local files are read, not URLs")
    if not os.path.exists(raw):
        raise MediaDecodeError(source, "no such file")
    if os.path.isdir(raw):
        raise MediaDecodeError(source, "it is a directory")
    if not os.path.isfile(raw):
        raise MediaDecodeError(source, "not a regular file")
    if os.path.getsize(raw) == 0:
        raise MediaDecodeError(source, "the file is empty (0 bytes)")
    if not os.access(raw, os.R_OK):
        raise MediaDecodeError(source, "permission denied")
    return os.path.abspath(raw)


def _run_worker(
    path: str | os.PathLike[str], *, probe_only: bool, sample_rate: int, time_limit: float | None,
    max_duration: float = DEFAULT_MAX_DURATION,
) -> tuple[dict[str, Any], bytes]:
    source = os.fspath(path)
    abspath = _check_path(path)
    limit = DEFAULT_TIME_LIMIT if time_limit is None else float(time_limit)
    mode = "probe" if probe_only else "decode"
    # -P: the working directory (which may hold anything, e.g. next to the media) is not put on sys.path;
    # polymodal is found where this process found it, installed or not.
    cmd = [sys.executable, "-P", "-m", "polymodal.media.audio", abspath, str(sample_rate), mode, str(max_duration)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    # A new session so the child (and anything FFmpeg might start) can be killed as a group.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise MediaTimeoutError(source, limit) from None
    except BaseException:  # Ctrl-C or the like: never leave the decoder running
        _kill(proc)
        raise
    header, _, payload = out.partition(b"\n")
    try:
        meta = json.loads(header) if header else {}
    except ValueError:
        meta = {}
    if "error" in meta:
        if meta.get("no_audio"):
            raise NoAudioError(source)
        raise MediaDecodeError(source, meta["error"])
    if proc.returncode != 0 or "info" not in meta:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        why = detail[-1] if detail else f"the decoder exited with status {proc.returncode}"
        raise MediaDecodeError(source, f"the decoder failed ({why})")
    return meta, payload


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: its group is only the decoder
    except ProcessLookupError:
        pass
    proc.communicate()


def probe_audio(path: str | os.PathLike[str], *, time_limit: float | None = None) -> AudioInfo:
    """The first audio track's metadata, without decoding it. Raises NoAudioError for a file without one."""
    meta, _ = _run_worker(path, probe_only=True, sample_rate=SAMPLE_RATE, time_limit=time_limit)
    return AudioInfo(**meta["info"])


def load_audio(
    path: str | os.PathLike[str], *, sample_rate: int = SAMPLE_RATE, time_limit: float | None = None,
    max_duration: float = DEFAULT_MAX_DURATION,
) -> DecodedAudio:
    """Decode the first audio track of ``path`` to mono float32 at ``sample_rate``.

    ``time_limit``: seconds before the decoding process is killed (default DEFAULT_TIME_LIMIT); then
    MediaTimeoutError. A missing, empty, corrupt or truncated file raises MediaDecodeError naming the
    reason; a file with no audio track raises NoAudioError (a subclass); a track longer than
    ``max_duration`` seconds raises MediaDecodeError (the rest is never decoded).
    """
    import numpy as np

    meta, payload = _run_worker(path, probe_only=False, sample_rate=sample_rate, time_limit=time_limit,
                                max_duration=max_duration)
    samples = np.frombuffer(payload, dtype=np.float32).copy()
    info = AudioInfo(**meta["info"])
    return DecodedAudio(samples=samples, sample_rate=sample_rate, info=info)


# --- the worker: runs in the child process -------------------------------------------------------------------


def _open(abspath: str) -> Any:
    import av

    return av.open(
        "file:" + abspath,
        options={"protocol_whitelist": "file", "format_whitelist": ALLOWED_DEMUXERS},
        metadata_errors="replace",  # tags that are not UTF-8 must not fail the open (benchmarks/fuzz_ingest.py)
    )


def _declared_duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _wav_declared_duration(abspath: str) -> float | None:
    """Seconds of audio a RIFF/WAVE header promises, read from the file itself.

    FFmpeg's wav demuxer trims the declared length to the file size, so a WAV cut short would otherwise
    look complete; the header's data-chunk size still says how long it was meant to be.
    """
    import struct

    with open(abspath, "rb") as fh:
        head = fh.read(1 << 16)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        tag, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if tag == b"fmt " and pos + 16 <= len(head):
            byte_rate = struct.unpack("<I", head[pos + 16:pos + 20])[0]
        if tag == b"data":
            # 0 and 0xFFFFFFFF mean "unknown" (a WAV written while streaming)
            return size / byte_rate if byte_rate and size not in (0, 0xFFFFFFFF) else None
        pos += 8 + size + (size & 1)
    return None


def _worker(abspath: str, sample_rate: int, probe_only: bool, max_duration: float) -> dict[str, Any]:
    import av
    import numpy as np

    try:
        container = _open(abspath)
    except av.error.FFmpegError as exc:
        return {"error": "not a readable audio or video file in a format polymodal opens "
                         f"(playlists and concat lists are refused) ({exc.strerror or exc})"}
    with container:
        if not container.streams.audio:
            return {"error": "it has no audio track", "no_audio": True}
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        declared = _declared_duration(container, stream)
        if container.format.name == "wav":
            declared = _wav_declared_duration(abspath) or declared
        info = AudioInfo(
            duration=declared or 0.0,
            codec=ctx.name if ctx is not None else "unknown",
            sample_rate=int(ctx.sample_rate or 0),
            channels=int(ctx.channels or 0),
            container=container.format.name,
            declared_duration=declared,
        )
        if probe_only:
            return {"info": asdict(info)}
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[Any] = []
        budget, decoded = round(max_duration * sample_rate), 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    decoded += len(chunks[-1])
                if decoded > budget:
                    return {"error": f"more than {max_duration:g} s of audio, the most decoded at once"}
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            return {"error": f"corrupt audio data after {decoded / sample_rate:.2f} s ({exc.strerror or exc})"}
        samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    info.duration = len(samples) / sample_rate
    if info.duration == 0.0:
        return {"error": "the audio track holds no decodable audio"}
    if declared and declared - info.duration > max(_TRUNCATION_MIN_S, _TRUNCATION_SLACK * declared):
        return {"error": f"truncated: the header declares {declared:.2f} s of audio but only "
                         f"{info.duration:.2f} s could be decoded"}
    return {"info": asdict(info), "samples": samples}


def _main(argv: list[str]) -> int:
    abspath, rate, mode, max_duration = argv[0], int(argv[1]), argv[2], float(argv[3])
    result = _worker(abspath, rate, probe_only=(mode == "probe"), max_duration=max_duration)
    samples = result.pop("samples", None)
    out = sys.stdout.buffer
    out.write(json.dumps(result).encode() + b"\n")
    if samples is not None:
        out.write(samples.tobytes())
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
