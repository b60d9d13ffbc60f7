"""Visual indexing of a long video: polymodal's pipeline against a naive one, with lite and a ViT-B/32.

The video: synthetic 720p at 30 fps, scenes cut from scikit-image photos (slowly panned, 4-20 s each, cuts
at known times) with espeak-ng speech muxed in, ``--seconds`` long (default 600), encoded once with
libx264 (default settings: keyframes every 250 frames plus at scene cuts) and kept in benchmarks/out.

- **polymodal**: ``media_ingest.visual_segments``, what ``polymodal index`` runs for the picture of a video:
  keyframes only, then the stretches that may hide a cut (B-frames skipped), segments of at most 10 s,
  3 frames each (from frames already decoded where possible, else by seeking), embedded, meanP.
- **naive**: decode every frame, convert one per second to RGB and embed it (what a simple indexer does).

Both end with embeddings of the video; the table gives wall time and the real-time factor (video seconds
per second of work; higher is better), and the CPU seconds spent (this process and its decoding children):
on a shared, loaded machine wall time measures the load as much as the code, while CPU time does not, and
``duration / CPU`` is the real-time factor the work would reach on one otherwise idle core. Speech is measured in the speech section (benchmarks/speech_speed.py).

    python benchmarks/video_index.py [--seconds 600] [--models lite,vitb32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent / "tests"))  # media_factory: the same video maker the tests use
sys.path.insert(0, str(HERE))

PHOTOS = ("cat", "coffee", "rocket", "astronaut", "horse", "motorbike")
PHRASES = ("the train to london is late", "welcome to the meeting everyone", "my favourite colour is green",
           "please call me tomorrow morning", "the weather is beautiful today")


def make_long_video(seconds: float, path: Path) -> tuple[Path, list[float]]:
    """The benchmark video (made once per length) and its cut times."""
    from media_factory import Scene, Speech, make_video

    rng = np.random.default_rng(0)
    scenes, t = [], 0.0
    while t < seconds:
        length = float(min(rng.uniform(4, 20), seconds - t))
        if length < 1:
            break
        scenes.append(Scene(PHOTOS[len(scenes) % len(PHOTOS)], round(length, 1)))
        t += round(length, 1)
    cuts = list(np.cumsum([s.seconds for s in scenes])[:-1])
    meta = path.with_suffix(".json")
    if not path.exists() or not meta.exists():
        speech = [Speech(PHRASES[i % len(PHRASES)], float(s)) for i, s in enumerate(np.arange(2.0, t - 4, 15.0))]
        make_video(path, scenes, size=(1280, 720), fps=30, speech=speech, preset="veryfast")
        meta.write_text(json.dumps({"cuts": cuts, "seconds": t}))
    return path, json.loads(meta.read_text())["cuts"]


def naive(path: Path, encoder) -> tuple[int, int]:
    """Decode every frame; one frame per second to RGB and into the model. (frames decoded, frames embedded)"""
    import av
    from PIL import Image

    decoded, picked, next_t = 0, [], 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            decoded += 1
            if frame.time is not None and frame.time >= next_t:
                picked.append(encoder.preprocess_image(Image.fromarray(frame.to_ndarray(format="rgb24"))))
                next_t += 1.0
    for i in range(0, len(picked), 32):
        encoder._embed_image_batch(picked[i: i + 32])
    return decoded, len(picked)


def ours(path: Path, encoder) -> tuple[int, int, list[float], int]:
    """(frames decoded, frames embedded, cuts, segments)"""
    from polymodal.library.media_ingest import MediaOptions, visual_segments

    analysis, rows = visual_segments(str(path), encoder, MediaOptions(speech=False))
    return analysis.decoded, sum(len(s.frames) for s in analysis.segments), analysis.cuts, len(rows)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children (the decoding subprocesses)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def load(name: str):
    import polymodal

    if name == "vitb32":
        import vitb32

        hf_dir, _ = vitb32.build(OUT)
        return polymodal.load_model(str(hf_dir))
    return polymodal.load_model(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--models", default="lite,vitb32")
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    path, cuts = make_long_video(args.seconds, OUT / f"video-720p30-{int(args.seconds)}s.mp4")
    made = time.perf_counter() - t0
    from polymodal.media.video import probe_video

    info = probe_video(path)
    print(f"video {path.name}: {info.duration:.1f} s, {info.width}x{info.height} @ {info.fps:g} fps, "
          f"{len(cuts)} cuts, {path.stat().st_size / 1e6:.1f} MB (made in {made:.0f} s)")
    print(f"machine: {os.cpu_count()} CPUs, load average before {os.getloadavg()[0]:.1f}")
    rows = []
    for name in args.models.split(","):
        enc = load(name)
        enc._embed_image_batch([enc.preprocess_image(__import__("PIL.Image").Image.new("RGB", (224, 224)))])
        load_before = os.getloadavg()[0]
        t, c = time.perf_counter(), cpu_seconds()
        decoded, embedded, found, segments = ours(path, enc)
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        hits = sum(1 for c in cuts if any(abs(c - f) <= 0.5 for f in found))
        rows.append({"model": name, "pipeline": "polymodal", "wall_s": round(wall, 1), "rtf": round(info.duration /
                     wall, 1), "decoded": decoded, "embedded": embedded, "segments": segments,
                     "cuts_found": f"{hits}/{len(cuts)} (+{len(found) - hits} extra)", "load": round(load_before, 1),
                     "cpu_s": round(cpu, 1), "rtf_cpu": round(info.duration / cpu, 1)})
        print(rows[-1], flush=True)
        if not args.skip_naive:
            load_before = os.getloadavg()[0]
            t, c = time.perf_counter(), cpu_seconds()
            decoded, embedded = naive(path, enc)
            wall, cpu = time.perf_counter() - t, cpu_seconds() - c
            rows.append({"model": name, "pipeline": "naive (every frame decoded, 1 fps embedded)",
                         "wall_s": round(wall, 1), "rtf": round(info.duration / wall, 1), "decoded": decoded,
                         "embedded": embedded, "segments": None, "cuts_found": "-", "load": round(load_before, 1),
                         "cpu_s": round(cpu, 1), "rtf_cpu": round(info.duration / cpu, 1)})
            print(rows[-1], flush=True)
    print("\n| model | pipeline | wall (s) | × real time (wall) | CPU (s) | × real time per CPU second | "
          "frames decoded | frames embedded | cuts found | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['pipeline']} | {r['wall_s']} | {r['rtf']} | {r['cpu_s']} | {r['rtf_cpu']} | "
              f"{r['decoded']} | {r['embedded']} | {r['cuts_found']} | {r['load']} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
