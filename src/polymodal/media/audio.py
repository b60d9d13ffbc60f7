"""Audio decoding with PyAV (no ffmpeg binary): any audio file or a video's audio track to 16 kHz mono float32.

Decoding never happens in the caller's process: ``media.sandbox`` runs the decoder below in a child process
(``python -P -m polymodal.media.worker audio PATH``) that streams the samples back as raw float32 and is
killed when the time limit passes, so a hostile file cannot leave the caller hung, whatever state FFmpeg
was in.

Only local files are opened: the path is handed to FFmpeg as ``file:/abs/path`` (so ``http://``,
``concat:``, ``subfile,`` and other protocol prefixes are never interpreted), nested references are limited
to the ``file`` protocol, and only the demuxers of the formats polymodal ingests are allowed (no HLS or
concat playlists, which would make FFmpeg follow references inside the file).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from polymodal.errors import NoAudioError
from polymodal.media.sandbox import open_local, run_worker

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


def _run(
    path: str | os.PathLike[str], params: dict[str, Any], time_limit: float | None
) -> tuple[dict[str, Any], bytes]:
    limit = DEFAULT_TIME_LIMIT if time_limit is None else float(time_limit)
    header, payload = run_worker("audio", path, params, limit)
    if header.get("no_audio"):
        raise NoAudioError(os.fspath(path))
    return header, payload


def probe_audio(path: str | os.PathLike[str], *, time_limit: float | None = None) -> AudioInfo:
    """The first audio track's metadata, without decoding it. Raises NoAudioError for a file without one."""
    header, _ = _run(path, {"probe": True}, time_limit)
    return AudioInfo(**header["info"])


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

    params = {"probe": False, "sample_rate": sample_rate, "max_duration": max_duration}
    header, payload = _run(path, params, time_limit)
    samples = np.frombuffer(payload, dtype=np.float32).copy()
    info = AudioInfo(**header["info"])
    return DecodedAudio(samples=samples, sample_rate=sample_rate, info=info)


# --- the decoder: runs in the child process (media.worker) ---------------------------------------------------


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
        container = open_local(abspath, ALLOWED_DEMUXERS)
    except av.error.FFmpegError as exc:
        return {"error": "not a readable audio or video file in a format polymodal opens "
                         f"(playlists and concat lists are refused) ({exc.strerror or exc})"}
    with container:
        if not container.streams.audio:
            return {"no_audio": True}  # not an "error": the caller raises NoAudioError for it
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


def child_decode(abspath: str, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The decoding child's work (``media.worker``): the JSON header, and the samples as raw float32 bytes."""
    result = _worker(abspath, int(params.get("sample_rate", SAMPLE_RATE)), probe_only=bool(params["probe"]),
                     max_duration=float(params.get("max_duration", DEFAULT_MAX_DURATION)))
    samples = result.pop("samples", None)
    return result, samples.tobytes() if samples is not None else b""
