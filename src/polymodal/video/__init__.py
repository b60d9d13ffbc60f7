"""Whole-video views built on ``media.video`` and ``polymodal.speech``: scenes, keyframes, transcript, tags."""

from polymodal.video.summary import Scene, VideoSummary, summarize

__all__ = ["Scene", "VideoSummary", "summarize"]
