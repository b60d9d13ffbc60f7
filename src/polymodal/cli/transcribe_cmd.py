"""``polymodal transcribe``: speech in an audio or video file to SRT, WebVTT, JSON or text."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polymodal.errors import InputError, OutputSpaceError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcribe", help="speech to text with timestamps",
        description="Transcribe the speech in an audio file or a video's sound track, offline (faster-whisper).",
    )
    p.add_argument("file", metavar="FILE", help="audio (wav, mp3, m4a, flac, ogg, opus) or video with sound")
    p.add_argument("--model", "-m", default=None,
                   help="tiny.en (default, bundled), a faster-whisper name already in the local Hugging Face "
                   "cache (base, small.en, large-v3, ...), or a directory with a CTranslate2 Whisper model")
    p.add_argument("--language", "-l", default=None,
                   help="language code (en, de, ...); default: detected by multilingual models, en for .en models")
    p.add_argument("--format", "-f", choices=("txt", "srt", "vtt", "json"), default=None,
                   help="output format (default: from --output's extension, else txt)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    p.add_argument("--no-vad", action="store_true", help="transcribe silence too (no voice activity filter)")
    p.add_argument("--no-word-timestamps", action="store_true", help="segment times only (a little faster)")
    p.add_argument("--compute-type", default="int8",
                   help="CTranslate2 compute type: int8 (default), float32, int8_float32, ...")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="give up on the file after this long (decoding and again transcribing)")
    p.set_defaults(func=run_transcribe)


def _format_for(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.output:
        suffix = Path(args.output).suffix.lower().lstrip(".")
        if suffix in ("txt", "srt", "vtt", "json"):
            return suffix
    return "txt"


def _progress_bar() -> Callable[[float, float], None]:
    from tqdm import tqdm

    bar: list[Any] = []

    def update(done: float, total: float) -> None:
        if not bar:
            bar.append(tqdm(total=round(total, 1), desc="transcribing", unit="s", file=sys.stderr,
                            disable=None, leave=False, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s"))
        bar[0].update(round(done, 1) - bar[0].n)
        if done >= total:
            bar[0].close()

    return update


def run_transcribe(args: argparse.Namespace) -> int:
    from polymodal.speech import transcribe
    from polymodal.speech.formats import render

    fmt = _format_for(args)
    if args.time_limit is not None and args.time_limit <= 0:
        raise InputError("--time-limit must be a positive number of seconds")
    started = time.monotonic()
    transcript = transcribe(
        args.file, model=args.model, language=args.language, vad=not args.no_vad,
        word_timestamps=not args.no_word_timestamps, time_limit=args.time_limit,
        compute_type=args.compute_type, progress=_progress_bar(),
    )
    elapsed = time.monotonic() - started
    text = render(transcript, fmt, source=args.file)
    if args.output:
        _write(Path(args.output), text)
    else:
        sys.stdout.write(text)
    speed = transcript.duration / elapsed if elapsed > 0 else float("inf")
    print(
        f"polymodal: transcribed {transcript.duration:.1f} s of audio in {elapsed:.1f} s ({speed:.1f}x real time), "
        f"{len(transcript.segments)} segments, language {transcript.language}, model {transcript.model}"
        + (f", written to {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return 0


def _write(path: Path, text: str) -> None:
    # Written beside the target and renamed, so an interrupted run never leaves half a subtitle file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputSpaceError(f"cannot write the transcript to {path}: {exc.strerror or exc}") from None
