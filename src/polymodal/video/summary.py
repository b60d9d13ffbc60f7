"""``summarize``: a video as scenes, each with its time range, a keyframe, what is said and zero-shot tags.

A scene is a shot found by ``media.video`` (content change). Its keyframe is the sampled frame closest to
the mean of the scene's frame embeddings (the most typical picture of the scene, not merely its first
frame); its tags are the labels that frame mean matches best (``library.tags``' labels and rule); its
transcript is the speech segments whose middle falls inside it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import InputError, MediaDecodeError, NoAudioError, NoVideoError
from polymodal.models.base import Encoder


@dataclass
class Scene:
    index: int
    start: float
    end: float
    keyframe: float  # time of the keyframe, seconds
    transcript: str = ""
    tags: list[dict[str, Any]] = field(default_factory=list)  # [{"label", "probability"}], best first
    keyframe_path: str | None = None  # where the keyframe was written, when asked


@dataclass
class VideoSummary:
    path: str
    duration: float
    fps: float | None
    width: int
    height: int
    codec: str
    rotation: int
    has_audio: bool
    language: str | None = None
    speech_error: str | None = None  # why the sound was not transcribed, when it has sound
    scenes: list[Scene] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(path: str | os.PathLike[str], encoder: Encoder, *, labels: Sequence[str] | None = None,
              speech: bool = True, speech_model: str | None = None, time_limit: float | None = None,
              keyframes: str | os.PathLike[str] | None = None, max_tags: int = 3,
              min_probability: float | None = None) -> VideoSummary:
    """Scenes of ``path`` with keyframes, transcript and tags. ``keyframes``: a folder to write JPEGs into."""
    from polymodal.library import tags as tagmod
    from polymodal.library.media_ingest import embed_frames, media_kind
    from polymodal.media.video import analyse_video
    from polymodal.zeroshot import clean_labels, label_embeddings, probabilities

    if max_tags < 1:
        raise InputError(f"max_tags must be at least 1, got {max_tags}")
    no_pictures = ("it is an audio file, with no pictures to cut into scenes; transcribe it instead "
                   "(`polymodal transcribe`, polymodal.speech.transcribe)")
    if media_kind(os.fspath(path)) == "audio":
        # The video decoder does not open audio containers, and would only say "not a readable video file".
        raise MediaDecodeError(os.fspath(path), no_pictures)
    names = clean_labels(list(labels or tagmod.DEFAULT_LABELS))
    floor = tagmod.MIN_PROBABILITY if min_probability is None else min_probability
    try:
        analysis = analyse_video(path, time_limit=time_limit)
    except NoVideoError:  # a video container (.mp4, .mkv) holding only sound
        raise MediaDecodeError(os.fspath(path), no_pictures) from None
    info = analysis.info
    out = VideoSummary(os.fspath(path), info.duration, info.fps, info.width, info.height, info.codec, info.rotation,
                       info.has_audio)
    transcript = None
    if speech and info.has_audio:
        from polymodal.speech import transcribe

        try:
            transcript = transcribe(path, model=speech_model, time_limit=time_limit, word_timestamps=False)
            out.language = transcript.language
        except NoAudioError:
            pass
        except MediaDecodeError as exc:
            out.speech_error = exc.reason
    frames = [(s.shot, t, f) for s in analysis.segments for t, f in zip(s.frame_times, s.frames)]
    emb = embed_frames(encoder, [f for _, _, f in frames])
    classes = label_embeddings(encoder, names, "simple")
    folder = Path(keyframes) if keyframes is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    for shot in analysis.shots:
        idx = [i for i, (s, _, _) in enumerate(frames) if s == shot.shot]
        if not idx:
            continue
        mean = emb[idx].mean(axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        best = idx[int(np.argmax(emb[idx] @ mean))]
        probs = probabilities(encoder, (mean @ classes.T)[None, :])[0]
        order = np.argsort(-probs)[:max_tags]
        scene = Scene(index=shot.shot, start=round(shot.start, 3), end=round(shot.end, 3),
                      keyframe=round(frames[best][1], 3),
                      tags=[{"label": names[i], "probability": round(float(probs[i]), 4)} for i in order
                            if probs[i] >= floor])
        if transcript is not None:
            scene.transcript = " ".join(s.text.strip() for s in transcript.segments
                                        if shot.start <= (s.start + s.end) / 2 < shot.end and s.text.strip())
        if folder is not None:
            target = folder / f"scene_{shot.shot:03d}.jpg"
            target.write_bytes(frames[best][2])  # the decoder's JPEG, as sampled
            scene.keyframe_path = str(target)
        out.scenes.append(scene)
    return out
