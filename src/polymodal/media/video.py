"""Video decoding with PyAV: metadata, shot boundaries, segments and a few frames per segment.

Like audio decoding (``media.audio``), it never runs in the caller's process: ``media.sandbox`` runs the
decoder below in a child process (``python -P -m polymodal.media.worker video PATH``), killed when its time
limit passes, so a hostile file cannot hang or crash an indexing job. The child sends back a JSON header
(metadata, cuts, segments, each frame's time and byte length) followed by the JPEG frames one after
another: plain data, never pickle. Only local files are opened, through the ``file`` protocol, with the same
demuxer allow-list as audio (no HLS or concat playlists).

Decoding every frame of an H.264 stream is what costs; this avoids it where it can:

1. keyframes only (the decoder skips the rest): their times and a small HSV picture each;
2. where two consecutive keyframes differ enough to hide a cut (and after the last keyframe), the frames
   between them are decoded and compared, and cuts placed on the first frame of the new shot
   (encoders such as x264 put a keyframe on most cuts, so usually only a short stretch is decoded);
3. shots are split into segments of at most ``max_segment`` seconds, and each segment's frames are taken
   from the frames already decoded when one is near enough, else by seeking to the time.

Known limit: a cut away and back (A, B, A) within one keyframe interval whose two keyframes both show A is
not seen; keyframe intervals of phone and camera video (0.5-2 s) make that a shot shorter than ~2 s.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from polymodal.errors import NoVideoError
from polymodal.media.sandbox import open_local, run_worker
from polymodal.media.shots import (
    CUT_THRESHOLD,
    FEATURE_SIZE,
    SUSPECT_THRESHOLD,
    Span,
    content_delta,
    find_cuts,
    hsv_feature,
    merge_cuts,
    sample_times,
    shots_from_cuts,
    split_shots,
)

#: file extensions treated as video
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
#: FFmpeg demuxers allowed to open a video: containers only, no playlists that reference other files
ALLOWED_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,asf,flv"
#: seconds a video analysis may run when the caller gives no limit
DEFAULT_TIME_LIMIT = 600.0
#: longest segment, in seconds; longer shots are split (search hits then point at a short stretch)
MAX_SEGMENT = 10.0
#: frames embedded per segment (CLIP4Clip's meanP pools a handful; more adds time, not accuracy, on a shot)
FRAMES_PER_SEGMENT = 3
#: shorter side of the frames sent back, in pixels (CLIP-style encoders read 224)
FRAME_SIZE = 256
#: frames decoded while looking for a cut are also kept as samples every this many seconds ...
_KEEP_EVERY = 0.5
#: ... up to this many (then every other one is dropped and the spacing doubled): memory stays bounded
_POOL_MAX = 1200
#: JPEG quality of the frames sent back (~15 kB at 455x256: a two-hour video's samples stay in the tens of MB)
_JPEG_QUALITY = 90
#: forward decoding rather than a seek when the next target is this close ahead
_DECODE_AHEAD = 2.0


@dataclass
class VideoInfo:
    duration: float  # seconds, from the packets actually read (the header may claim more)
    fps: float | None  # average frame rate
    width: int  # as displayed: rotation applied
    height: int
    codec: str
    rotation: int  # degrees counterclockwise the stored picture is turned for display (0, 90, 180, 270)
    container: str
    has_audio: bool
    audio_codec: str | None = None
    declared_duration: float | None = None  # what the header says, when it says


@dataclass
class VideoSegment:
    start: float
    end: float
    shot: int  # index of the shot it belongs to
    frames: list[bytes] = field(default_factory=list)  # JPEG, upright, shorter side FRAME_SIZE (see ``images``)
    frame_times: list[float] = field(default_factory=list)

    def images(self) -> list[Any]:
        """The sampled frames as RGB PIL images."""
        return [decode_frame(f) for f in self.frames]


def decode_frame(jpeg: bytes) -> Any:
    """One sampled frame (JPEG bytes from the decoder) as an RGB PIL image."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as img:
        return img.convert("RGB")


@dataclass
class VideoAnalysis:
    info: VideoInfo
    cuts: list[float]  # shot boundaries, seconds (the start of each shot but the first)
    segments: list[VideoSegment]
    keyframes: int  # keyframes decoded in the first pass
    decoded: int  # frames decoded in all (the cost, against info.duration * fps for decoding everything)

    @property
    def shots(self) -> list[Span]:
        return shots_from_cuts(self.cuts, 0.0, self.info.duration)


# --- the caller's side ------------------------------------------------------------------------------------------


def analyse_video(path: str | os.PathLike[str], *, max_segment: float = MAX_SEGMENT,
                  frames_per_segment: int = FRAMES_PER_SEGMENT, frame_size: int = FRAME_SIZE,
                  time_limit: float | None = None) -> VideoAnalysis:
    """Metadata, shots, segments and sampled frames of the first video track of ``path``.

    Raises MediaDecodeError naming the reason (corrupt, not media), NoVideoError (a subclass) for a file with
    no video track, MediaTimeoutError when it runs past ``time_limit`` seconds (default DEFAULT_TIME_LIMIT).
    """
    if max_segment <= 0 or frames_per_segment < 1:
        raise ValueError("max_segment must be positive and frames_per_segment at least 1")
    params = {"max_segment": max_segment, "frames": frames_per_segment, "size": frame_size, "probe": False}
    return _analysis_from_wire(*_run(path, params, time_limit))


def probe_video(path: str | os.PathLike[str], *, time_limit: float | None = 60.0) -> VideoInfo:
    """Only the metadata (reads the packets to measure the duration, decodes one frame for the rotation)."""
    header, _ = _run(path, {"probe": True}, time_limit)
    return VideoInfo(**header["info"])


def _run(
    path: str | os.PathLike[str], params: dict[str, Any], time_limit: float | None
) -> tuple[dict[str, Any], bytes]:
    header, payload = run_worker("video", path, params, DEFAULT_TIME_LIMIT if time_limit is None else float(time_limit))
    if header.get("no_video"):
        raise NoVideoError(os.fspath(path))
    return header, payload


def _analysis_from_wire(header: dict[str, Any], payload: bytes) -> VideoAnalysis:
    """The analysis the child sent (``_analysis_to_wire``): each segment's frames are cut from the payload in turn."""
    segments, pos = [], 0
    for s in header["segments"]:
        frames = []
        for size in s["frame_sizes"]:
            frames.append(payload[pos:pos + size])
            pos += size
        segments.append(VideoSegment(s["start"], s["end"], s["shot"], frames, s["frame_times"]))
    return VideoAnalysis(VideoInfo(**header["info"]), header["cuts"], segments, keyframes=header["keyframes"],
                         decoded=header["decoded"])


# --- the child's side -------------------------------------------------------------------------------------------


def _seconds(value: Any, time_base: Any) -> float | None:
    return float(value * time_base) if value is not None and time_base is not None else None


class _Decoder:
    """Decoding passes over one open video stream, with times in seconds from the stream's start."""

    def __init__(self, container: Any, size: int) -> None:
        self.container = container
        self.stream = container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.tb = self.stream.time_base
        self.origin = _seconds(self.stream.start_time, self.tb) or 0.0
        self.size = size
        self.rotation: int | None = None
        self.decoded = 0
        self.last_time = -1.0  # time of the last frame decoded, -1 after a seek
        self.end_time = 0.0  # end of the last packet read
        self.packets_read = 0  # video packets with a time (one frame each), counted to measure the frame rate

    def time(self, frame: Any) -> float:
        t = frame.time
        return (float(t) if t is not None else 0.0) - self.origin

    def packets(self):
        for packet in self.container.demux(self.stream):
            if packet.pts is not None:
                self.packets_read += 1
                dur = packet.duration or 0
                self.end_time = max(self.end_time, float((packet.pts + dur) * self.tb) - self.origin)
            yield packet

    def frames(self, skip: str = "DEFAULT"):
        import av

        self.stream.codec_context.skip_frame = skip
        for packet in self.packets():
            try:
                decoded = packet.decode()
            except av.error.EOFError:
                return  # the decoder was already drained (a flush packet after the end)
            for frame in decoded:
                self.decoded += 1
                if self.rotation is None:
                    self.rotation = round(getattr(frame, "rotation", 0) or 0) % 360
                t = self.time(frame)
                self.last_time = t
                yield t, frame

    def seek(self, t: float) -> None:
        self.container.seek(int((t + self.origin) / self.tb), stream=self.stream, backward=True, any_frame=False)
        self.last_time = -1.0

    def feature(self, frame: Any) -> np.ndarray:
        small = _small_rgb(frame)
        if small is None:
            w, h = FEATURE_SIZE
            small = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
        return hsv_feature(small)

    def picture(self, frame: Any) -> bytes:
        """The frame as an upright JPEG with its shorter side ``size`` (never enlarged)."""
        import io

        from PIL import Image

        w, h = frame.width, frame.height
        scale = min(1.0, self.size / max(1, min(w, h)))
        tw, th = max(2, round(w * scale)), max(2, round(h * scale))
        arr = frame.reformat(width=tw, height=th, format="rgb24").to_ndarray()
        k = (self.rotation or 0) // 90
        arr = np.ascontiguousarray(np.rot90(arr, k)) if k else arr
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=_JPEG_QUALITY)
        return buf.getvalue()


def _small_rgb(frame: Any) -> np.ndarray | None:
    """A FEATURE_SIZE RGB picture read straight off the planes of an 8-bit 4:2:0 frame, or None for other layouts.

    Shrinking the whole frame through swscale costs 6-9 ms at 720p, more than decoding it; this samples a
    grid of points (2x2 averaged) and converts them with BT.601, in a fraction of a millisecond. The content
    measure only needs a faithful thumbnail of the colours, not a well-filtered one.
    """
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return None
    w, h = FEATURE_SIZE
    fw, fh = frame.width, frame.height
    if fw < 2 * w or fh < 2 * h:
        return None
    planes = frame.planes
    rows = np.linspace(0, fh - 2, 2 * h).astype(np.intp) & ~1  # even rows and columns: chroma lines up
    cols = np.linspace(0, fw - 2, 2 * w).astype(np.intp) & ~1

    def grid(plane: Any, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        arr = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        pts = arr[np.ix_(r, c)].astype(np.float32)
        return pts.reshape(h, 2, w, 2).mean(axis=(1, 3))

    y = grid(planes[0], rows, cols)
    u = grid(planes[1], rows // 2, cols // 2) - 128.0
    v = grid(planes[2], rows // 2, cols // 2) - 128.0
    if frame.format.name == "yuv420p":  # limited range (16-235) to full
        y = (y - 16.0) * (255.0 / 219.0)
        u, v = u * (255.0 / 224.0), v * (255.0 / 224.0)
    rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _frame_rate(declared: float | None, frames: int, duration: float) -> float | None:
    """The stream's declared average rate unless the frames counted over the duration say otherwise.

    Variable-frame-rate files (phones, screen recorders) often declare their timebase (1000 "fps" in Matroska)
    or nothing, where frames per second actually shown is what a user means by the frame rate.
    """
    measured = frames / duration if frames > 1 and duration > 0 else None
    if measured is None:
        return declared
    if declared is None or abs(declared - measured) > 0.1 * measured:
        return round(measured, 3)
    return declared


def _info(container: Any, dec: _Decoder | None, duration: float, frames: int = 0) -> VideoInfo:
    vs = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    rotation = (dec.rotation or 0) if dec else 0
    w = int(vs.codec_context.width or 0) if vs is not None else 0
    h = int(vs.codec_context.height or 0) if vs is not None else 0
    if rotation in (90, 270):
        w, h = h, w
    fps = _frame_rate(float(vs.average_rate) if vs is not None and vs.average_rate else None, frames, duration)
    declared = None
    if vs is not None:
        declared = _seconds(vs.duration, vs.time_base)
    if declared is None and container.duration is not None:
        declared = container.duration / 1_000_000
    return VideoInfo(duration=duration, fps=fps, width=w, height=h,
                     codec=vs.codec_context.name if vs is not None else "", rotation=rotation,
                     container=container.format.name, has_audio=audio is not None,
                     audio_codec=audio.codec_context.name if audio is not None else None,
                     declared_duration=declared)


def _analyse(abspath: str, params: dict[str, Any]) -> Any:
    import av

    try:
        container = open_local(abspath, ALLOWED_DEMUXERS)
    except av.error.FFmpegError as exc:
        return {"error": f"not a readable video file ({exc.strerror or exc})"}
    with container:
        if not container.streams.video:
            return {"no_video": True}  # not an "error": the caller raises NoVideoError (the file may be audio)
        if container.streams.video[0].codec_context is None:
            # found by benchmarks/fuzz_ingest.py: a track whose codec FFmpeg has no decoder for
            return {"error": "no decoder for its video codec"}
        dec = _Decoder(container, int(params.get("size", FRAME_SIZE)))
        try:
            return _passes(container, dec, params)
        except av.error.FFmpegError as exc:
            return {"error": f"corrupt video data ({exc.strerror or exc})"}


def _passes(container: Any, dec: _Decoder, params: dict[str, Any]) -> Any:
    # Pass 1: keyframes only.
    keys: list[tuple[float, np.ndarray, bytes]] = []  # (time, feature, picture)
    for t, frame in dec.frames("NONKEY"):
        if not frame.key_frame and keys:
            continue  # some decoders hand out the frame after a skipped run; only keyframes count here
        keys.append((t, dec.feature(frame), dec.picture(frame)))
        if params.get("probe"):
            break
    if not keys:
        return {"error": "no video frame could be decoded"}
    if params.get("probe"):
        for _ in dec.packets():  # read, not decoded: only the packets' end times are wanted
            pass
        return _info(container, dec, max(dec.end_time, keys[-1][0]), dec.packets_read)
    keys.sort(key=lambda k: k[0])
    duration = max(dec.end_time, keys[-1][0])
    frames = dec.packets_read  # the first pass read every packet once (later passes seek and read again)

    # Pass 2: decode the stretches that may hide a cut; keyframes exactly on a cut are compared too.
    pool: list[tuple[float, bytes]] = [(t, pic) for t, _, pic in keys]
    keep_every = _KEEP_EVERY
    suspects = [i for i in range(len(keys) - 1) if content_delta(keys[i][1], keys[i + 1][1]) >= SUSPECT_THRESHOLD]
    stretches: list[tuple[float, float]] = []
    for i in suspects:
        a, b = keys[i][0], keys[i + 1][0]
        if stretches and abs(stretches[-1][1] - a) < 1e-6:
            stretches[-1] = (stretches[-1][0], b)  # consecutive suspects: one run, no seek between
        else:
            stretches.append((a, b))
    stretches.append((keys[-1][0], duration + 1.0))  # after the last keyframe nothing is known
    cuts: list[float] = []
    for a, b in stretches:
        dec.seek(a)
        times: list[float] = []
        feats: list[np.ndarray] = []
        last_kept = -1e9
        # B-frames (non-reference) are skipped: a cut is then placed within a frame or two, far inside the
        # half-second the shots need, for ~40% less decoding.
        for t, frame in dec.frames("NONREF"):
            if t < a - 1e-6:
                continue
            times.append(t)
            feats.append(dec.feature(frame))
            if t - last_kept >= keep_every:
                pool.append((t, dec.picture(frame)))
                last_kept = t
                if len(pool) > _POOL_MAX:
                    pool, keep_every = pool[::2], keep_every * 2
            if t >= b - 1e-6:
                break
        cuts += find_cuts(times, feats, CUT_THRESHOLD)
        duration = max(duration, dec.end_time)
    cuts = merge_cuts(cuts, 0.0, duration)

    # Pass 3: frames for each segment, from the pool when one is close enough, else by seeking.
    segments = [VideoSegment(s.start, s.end, s.shot)
                for s in split_shots(shots_from_cuts(cuts, 0.0, duration), float(params["max_segment"]))]
    pool.sort(key=lambda p: p[0])
    pool_times = np.array([p[0] for p in pool])
    wanted: list[tuple[float, VideoSegment]] = []
    n = int(params["frames"])
    for seg in segments:
        tol = (seg.end - seg.start) / (2 * n)
        for t in sample_times(Span(seg.start, seg.end, seg.shot), n):
            j = int(np.argmin(np.abs(pool_times - t)))
            pt = float(pool_times[j])
            if abs(pt - t) <= tol and seg.start <= pt < seg.end:
                seg.frames.append(pool[j][1])
                seg.frame_times.append(pt)
            else:
                wanted.append((t, seg))
    wanted.sort(key=lambda w: w[0])
    _seek_samples(dec, wanted)
    for seg in segments:
        order = np.argsort(seg.frame_times)
        seg.frames = [seg.frames[i] for i in order]
        seg.frame_times = [seg.frame_times[i] for i in order]
    segments = [s for s in segments if s.frames]
    if not segments:
        return {"error": "no video frame could be decoded"}
    info = _info(container, dec, duration, frames)
    return VideoAnalysis(info, cuts, segments, keyframes=len(keys), decoded=dec.decoded)


def _seek_samples(dec: _Decoder, wanted: list[tuple[float, VideoSegment]]) -> None:
    """Decode the frame at (or just after) each wanted time, in time order, seeking only when far behind or ahead."""
    it = None
    for t, seg in wanted:
        if it is None or dec.last_time < 0 or dec.last_time > t or t - dec.last_time > _DECODE_AHEAD:
            dec.seek(t)
            # Non-reference frames (B-frames) are skipped while catching up: the sample may land a frame or
            # two after the wanted time, which a segment's sampling does not care about.
            it = dec.frames("NONREF")
        got = None
        for ft, frame in it:
            got = (ft, frame)
            if ft >= t - 1e-3:
                break
        else:
            it = None  # the stream ended: the last frame seen stands for the wanted time
        if got is not None and seg.start - 0.5 <= got[0] < seg.end + 0.5:
            seg.frames.append(dec.picture(got[1]))
            seg.frame_times.append(got[0])


def child_decode(abspath: str, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The decoding child's work (``media.worker``): ``_analyse``'s result as a JSON header and a payload."""
    result = _analyse(abspath, params)
    if isinstance(result, VideoAnalysis):
        return _analysis_to_wire(result)
    if isinstance(result, VideoInfo):
        return {"info": asdict(result)}, b""
    return result, b""  # {"error": reason}


def _analysis_to_wire(analysis: VideoAnalysis) -> tuple[dict[str, Any], bytes]:
    """An analysis as a JSON header, and its segments' JPEG frames one after another as the payload."""
    segments = [{"start": s.start, "end": s.end, "shot": s.shot, "frame_times": s.frame_times,
                 "frame_sizes": [len(f) for f in s.frames]} for s in analysis.segments]
    header = {"info": asdict(analysis.info), "cuts": analysis.cuts, "segments": segments,
              "keyframes": analysis.keyframes, "decoded": analysis.decoded}
    return header, b"".join(f for s in analysis.segments for f in s.frames)
