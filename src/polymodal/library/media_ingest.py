"""What indexing does with a video or audio file: segments, their embeddings, the speech, one item vector.

Video: ``media.video`` finds shots and samples a few frames per segment (in a killable child process); a
segment's embedding is the normalised mean of its normalised frame embeddings (CLIP4Clip's meanP), and the
item's is the normalised mean of its segments'. Speech (video sound tracks and audio files) is transcribed
by ``polymodal.speech`` and each transcript segment embedded with the library's text encoder.

An audio file with no speech has nothing to embed but its name: its vector is the text embedding of the
file name, so it can still be found by name and listed, and it has no moments.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polymodal.errors import MediaDecodeError, NoAudioError, NoVideoError
from polymodal.library.segments import SPEECH, VISUAL, SegmentRow
from polymodal.media.audio import AUDIO_EXTENSIONS
from polymodal.media.video import VIDEO_EXTENSIONS
from polymodal.models.base import Encoder, normalise

MEDIA_EXTENSIONS = frozenset(VIDEO_EXTENSIONS) | frozenset(AUDIO_EXTENSIONS)

log = logging.getLogger(__name__)


def media_kind(path: str | bytes) -> str | None:
    """``video``, ``audio`` or None (not a media file polymodal indexes), from the file name."""
    ext = os.path.splitext(os.fsdecode(path))[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return None


@dataclass(frozen=True)
class MediaOptions:
    """How video and audio files are indexed."""

    speech: bool = True  # transcribe sound tracks and audio files
    speech_model: str | None = None  # Whisper spec (default: the bundled tiny.en)
    language: str | None = None  # None: detect (multilingual models)
    time_limit: float | None = None  # seconds per file for decoding, and again for transcribing
    max_segment: float = 10.0  # longest visual segment, seconds
    frames_per_segment: int = 3


@dataclass
class MediaResult:
    kind: str  # video or audio
    vector: np.ndarray  # the item's embedding
    segments: list[SegmentRow] = field(default_factory=list)
    media: dict[str, Any] = field(default_factory=dict)  # the row of the media table
    width: int | None = None
    height: int | None = None
    thumbnail: bytes = b""


def file_hash(raw: bytes, chunk: int = 1 << 20) -> str:
    """BLAKE2b-128 of a file read in chunks (the same digest as ``ingest.content_hash`` of its bytes)."""
    h = hashlib.blake2b(digest_size=16)
    with open(raw, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def embed_frames(encoder: Encoder, frames: list[bytes]) -> np.ndarray:
    """Normalised embeddings of sampled frames (JPEG bytes), decoded and preprocessed a batch at a time."""
    from polymodal.media.video import decode_frame

    out = []
    size = 32
    for i in range(0, len(frames), size):
        pixels = [encoder.preprocess_image(decode_frame(f)) for f in frames[i: i + size]]
        out.append(np.asarray(encoder._embed_image_batch(pixels), np.float32))
    return normalise(np.concatenate(out))


def visual_segments(path: str, encoder: Encoder, options: MediaOptions) -> tuple[Any, list[SegmentRow]]:
    """The video's analysis and its visual segment rows (meanP embeddings, a thumbnail each)."""
    from polymodal.media.thumbnails import make_thumbnail
    from polymodal.media.video import analyse_video, decode_frame

    analysis = analyse_video(path, max_segment=options.max_segment, frames_per_segment=options.frames_per_segment,
                             time_limit=options.time_limit)
    frames = [f for s in analysis.segments for f in s.frames]
    emb = embed_frames(encoder, frames)
    rows = []
    at = 0
    for n, seg in enumerate(analysis.segments):
        own = emb[at: at + len(seg.frames)]
        at += len(seg.frames)
        middle = seg.frames[len(seg.frames) // 2]
        rows.append(SegmentRow(id=f"v{n:04d}", kind=VISUAL, start=seg.start, end=seg.end,
                               vector=normalise(own.mean(axis=0)), shot=seg.shot,
                               frame_times=[round(t, 3) for t in seg.frame_times],
                               thumbnail=make_thumbnail(decode_frame(middle))))
    return analysis, rows


def speech_segments(path: str, encoder: Encoder, options: MediaOptions) -> tuple[Any, list[SegmentRow]]:
    """The transcript and its speech segment rows (text embeddings; words kept as JSON)."""
    from polymodal.speech import transcribe

    transcript = transcribe(path, model=options.speech_model, language=options.language, vad=True,
                            word_timestamps=True, time_limit=options.time_limit)
    spoken = [s for s in transcript.segments if s.text.strip()]
    if not spoken:
        return transcript, []
    emb = normalise(encoder.encode_texts([s.text for s in spoken], truncate=True))
    rows = [SegmentRow(id=f"s{n:04d}", kind=SPEECH, start=s.start, end=s.end, vector=emb[n], text=s.text.strip(),
                       words=json.dumps([[round(w.start, 3), round(w.end, 3), w.word] for w in s.words]))
            for n, s in enumerate(spoken)]
    return transcript, rows


def analyse_media(raw: bytes, encoder: Encoder, options: MediaOptions) -> MediaResult:
    """Everything the library stores for one video or audio file. Raises MediaDecodeError (with the reason)."""
    path = os.fsdecode(raw)
    kind = media_kind(raw)
    if kind is None:
        raise MediaDecodeError(path, "not a video or audio file name")
    analysis = None
    if kind == "video":
        try:
            analysis, rows = visual_segments(path, encoder, options)
        except NoVideoError:
            kind = "audio"  # a video container holding only sound (a podcast or recording saved as .mp4)
    media: dict[str, Any] = {"kind": kind}
    if analysis is not None:
        info = analysis.info
        media.update(duration=info.duration, fps=info.fps, width=info.width, height=info.height, codec=info.codec,
                     audio_codec=info.audio_codec, container=info.container, rotation=info.rotation,
                     shots=len(analysis.cuts) + 1)
        if options.speech and info.has_audio:
            try:
                transcript, speech = speech_segments(path, encoder, options)
                rows += speech
                media.update(language=transcript.language, speech_model=transcript.model)
            except NoAudioError:
                pass
            except MediaDecodeError as exc:
                # The picture is indexed; a damaged or over-long sound track only loses the speech. The item
                # is no failure, so say it here: else a search for its words finds nothing and nobody knows why.
                media["speech_error"] = exc.reason
                log.warning("%s: indexed by its pictures only, its speech was not transcribed: %s", path, exc.reason)
        visual = np.stack([r.vector for r in rows if r.kind == VISUAL])
        vector = normalise(visual.mean(axis=0))
        best = int(np.argmax(visual @ vector))  # the most representative segment shows the item
        thumb = next(r for r in rows if r.id == f"v{best:04d}").thumbnail or b""
        return MediaResult(kind, vector, rows, media, info.width, info.height, thumb)
    if not options.speech:
        raise MediaDecodeError(path, "audio files are indexed by their speech, and speech is turned off")
    from polymodal.media.audio import probe_audio

    audio = probe_audio(path, time_limit=options.time_limit)  # codec and container, in its own killable child
    transcript, rows = speech_segments(path, encoder, options)
    media.update(duration=transcript.duration, language=transcript.language, speech_model=transcript.model,
                 shots=0, audio_codec=audio.codec, container=audio.container)
    if rows:
        vector = normalise(np.stack([r.vector for r in rows]).mean(axis=0))
    else:
        name = os.path.splitext(os.path.basename(path))[0].replace("_", " ").replace("-", " ")
        vector = normalise(encoder.encode_texts([name or "audio"], truncate=True))[0]
    return MediaResult(kind, vector, rows, media)


def reembed_media(store: Any, row: dict[str, Any], encoder: Encoder, raw: dict[str, bytes], table: str,
                  options: MediaOptions) -> tuple[np.ndarray | None, str | None]:
    """A video or audio item embedded again with ``encoder`` into the segments table ``table`` (a reindex).

    Speech is not transcribed again (the words do not depend on the image-text model): its stored segments
    are re-embedded. A video's frames are decoded and embedded again. Returns (item vector, None) or
    (None, the reason none of its files could be used).
    """
    from polymodal.library import segments as seg

    reason = "no file left"
    for path in row["paths"]:
        source = raw.get(path) or os.fsencode(path)
        try:
            if file_hash(source) != row["hash"]:
                reason = f"{path} has changed since it was indexed"
                continue
        except OSError as exc:
            reason = f"cannot read {path}: {exc.strerror or exc}"
            continue
        said = seg.speech_rows(store, row["id"])
        rows: list[SegmentRow] = []
        try:
            if row["kind"] == "video":
                _, rows = visual_segments(os.fsdecode(source), encoder, options)
        except MediaDecodeError as exc:
            reason = exc.reason
            continue
        if said:
            emb = normalise(encoder.encode_texts([r["text"] for r in said], truncate=True))
            rows += [SegmentRow(id=r["id"], kind=SPEECH, start=r["start"], end=r["end"], vector=emb[n], text=r["text"],
                                words=r["words"]) for n, r in enumerate(said)]
        seg.write(store, row["id"], rows, None, table=table)
        own = [r.vector for r in rows if r.kind == (VISUAL if row["kind"] == "video" else SPEECH)]
        if own:
            return normalise(np.stack(own).mean(axis=0)), None
        name = os.path.splitext(os.path.basename(path))[0].replace("_", " ").replace("-", " ")
        return normalise(encoder.encode_texts([name or "audio"], truncate=True))[0], None
    return None, reason
