"""``polymodal video summarize``: a video file as scenes with keyframes, transcript and tags."""

from __future__ import annotations

import argparse

from polymodal.cli.common import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="look inside a video file", description="Commands on one video file.")
    cmds = p.add_subparsers(dest="video_command", metavar="COMMAND", required=True)
    s = cmds.add_parser("summarize", help="scenes with time ranges, keyframes, transcript and tags",
                        description="Cut the video into scenes (shots, by content change); for each: its time "
                        "range, a keyframe, what is said in it, and zero-shot tags.")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--json", action="store_true", help='print {"duration", ..., "scenes": [{"start", "end", '
                   '"keyframe", "transcript", "tags"}]}')
    s.add_argument("--keyframes", metavar="DIR", help="write each scene's keyframe to DIR/scene_NNN.jpg")
    s.add_argument("--labels", "-l", metavar="FILE|a,b,c", help="tag labels: a file with one per line or a "
                   "comma-separated list (default: the built-in list of `polymodal tag`)")
    s.add_argument("--no-speech", dest="speech", action="store_false", help="do not transcribe the sound")
    s.add_argument("--speech-model", metavar="SPEC", help="Whisper model (default: bundled tiny.en)")
    s.add_argument("--time-limit", type=float, metavar="SECONDS", help="for decoding, and again for transcribing")
    s.add_argument("-m", "--model", metavar="SPEC", help="image-text model for keyframes and tags (default: "
                   "$POLYMODAL_MODEL, the config file, else the default)")
    s.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    s.set_defaults(func=run_summarize)


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}"


def run_summarize(args: argparse.Namespace) -> int:
    from polymodal.cli.library_cmd import _labels
    from polymodal.models import load_model
    from polymodal.video import summarize

    encoder = load_model(args.model, device=args.device)
    summary = summarize(args.file, encoder, labels=_labels(args.labels), speech=args.speech,
                        speech_model=args.speech_model, time_limit=args.time_limit, keyframes=args.keyframes)
    if args.json:
        print_json(summary.to_dict())
        return 0
    fps = f", {summary.fps:g} fps" if summary.fps else ""
    print(f"{summary.path}: {summary.duration:.1f} s, {summary.width}x{summary.height}{fps}, {summary.codec}, "
          f"{len(summary.scenes)} scenes" + (f", speech: {summary.language}" if summary.language else ""))
    if summary.speech_error:
        print(f"  speech not transcribed: {summary.speech_error}")
    rows = [[str(s.index), f"{_clock(s.start)}-{_clock(s.end)}", _clock(s.keyframe),
             ", ".join(t["label"] for t in s.tags), (s.transcript[:60] + "...") if len(s.transcript) > 60
             else s.transcript] for s in summary.scenes]
    print_table(rows, ["#", "TIME", "KEYFRAME", "TAGS", "SAID"])
    return 0
