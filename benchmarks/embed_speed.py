"""Image embedding speed on CPU: polymodal (fp32, int8) against the reference pipelines, side by side.

    python benchmarks/embed_speed.py [--n 200] [--write]

Makes N 4000x3000 JPEG photos (quality 90) from scikit-image's sample photos (scaled, cropped, colour
jittered), then embeds them with a ViT-B/32 CLIP (random weights: same FLOPs as the real one):
  (a) references: PIL open -> the model's own preprocessing -> PyTorch fp32, batch 32; once with
      transformers' CLIPImageProcessor + CLIPModel and once with open_clip's preprocess + model, the
      same weights in both;
  (b) polymodal fp32 (its defaults: ONNX Runtime, reduced-size JPEG decode, threaded decode);
  (c) polymodal int8.
Each pipeline runs in its own process, so its peak RSS is its own. Also: model-only rates on pre-decoded
tensors, and single-query text latency. ``--write`` puts the whole section in benchmarks/RESULTS.md.

Every row names the runtime each network actually ran on (``Encoder.runtimes``: an int8 request that fell back
to fp32 shows as fp32), every pipeline gets the same untimed warm-up on two photos, and the off-diagonal column
(photo i against the reference's photo j, i != j) says how alike unrelated photos already are, so a parity
cosine can be read against it (with random weights it is high).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

from results_md import load_average, machine, write_section  # noqa: E402

BATCH = 32


def make_photos(n: int) -> list[Path]:
    import skimage
    from PIL import Image, ImageEnhance

    folder = OUT / "photos-4000x3000"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo_{i:04d}.jpg" for i in range(n)]
    todo = [p for p in paths if not p.exists()]
    if todo:
        data = Path(skimage.__file__).parent / "data"
        sources = [Image.open(data / f).convert("RGB") for f in (
            "chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png", "horse.png")]
        rng = np.random.default_rng(0)
        for p in todo:
            i = int(p.stem.split("_")[1])
            src = sources[i % len(sources)]
            w, h = src.size
            cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            img = src.crop((x, y, x + cw, y + ch)).resize((4000, 3000), Image.Resampling.BICUBIC)
            img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
            img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
            img.save(p, quality=90)
    return paths


def _peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork + exec, so a child started by
    # a parent holding 2 GB of photos would report the parent's peak as its own.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stage(name: str, paths: list[str], hf_dir: str, oc_dir: str) -> dict:
    """One pipeline, in this (child) process."""
    import torch
    from PIL import Image

    torch.set_num_threads(os.cpu_count() or 1)
    if name.startswith("ref-"):
        if name == "ref-transformers":
            from transformers import CLIPImageProcessor, CLIPModel

            model = CLIPModel.from_pretrained(hf_dir).eval()
            proc = CLIPImageProcessor.from_pretrained(hf_dir)

            def prep(batch: list) -> torch.Tensor:
                return proc(images=batch, return_tensors="pt")["pixel_values"]

            def embed(x: torch.Tensor) -> torch.Tensor:
                return model.get_image_features(pixel_values=x).pooler_output
            runtimes = {"image": "torch-fp32 (transformers CLIPModel)"}
        else:
            import open_clip

            model, _, pre = open_clip.create_model_and_transforms(f"local-dir:{oc_dir}")
            model.eval()

            def prep(batch: list) -> torch.Tensor:
                return torch.stack([pre(i) for i in batch])

            def embed(x: torch.Tensor) -> torch.Tensor:
                return model.encode_image(x)
            runtimes = {"image": "torch-fp32 (open_clip)"}

        with torch.inference_mode():  # the same untimed warm-up as polymodal's below
            embed(prep([Image.open(p).convert("RGB") for p in paths[:2]]))
        start = time.perf_counter()
        out = []
        with torch.inference_mode():
            for i in range(0, len(paths), BATCH):
                images = [Image.open(p).convert("RGB") for p in paths[i : i + BATCH]]
                out.append(embed(prep(images)).numpy())
        elapsed = time.perf_counter() - start
        emb = np.concatenate(out)
    elif name.startswith("lite-"):
        return _lite_stage(name, paths)
    else:
        import polymodal

        runtime, precision = {"polymodal-fp32": ("onnx", "fp32"), "polymodal-int8": ("onnx", "int8"),
                              "polymodal-torch": ("torch", "fp32")}[name]
        enc = polymodal.load_model(hf_dir, runtime=runtime, precision=precision, batch_size=BATCH)
        enc.encode_images(paths[:2])  # warm-up (and first-time export, not timed)
        start = time.perf_counter()
        emb = enc.encode_images(paths)
        elapsed = time.perf_counter() - start
        runtimes = {"image": enc.runtimes.get("image", "?")}  # what ran, not what was asked for
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    np.save(OUT / f"emb-{name}.npy", emb)
    return {"stage": name, "images_per_s": len(paths) / elapsed, "seconds": elapsed, "peak_rss_mb": _peak_rss_mb(),
            "runtimes": runtimes}


def _lite_stage(name: str, paths: list[str]) -> dict:
    """``lite`` (real weights) indexing the photos end to end, then where its time goes: the same photos
    decoded and preprocessed alone (one thread, then the encoder's decode threads), and the image network
    alone on the decoded tensors."""
    from concurrent.futures import ThreadPoolExecutor

    import polymodal

    enc = polymodal.load_model("lite", precision=name.split("-")[1], batch_size=BATCH)
    enc.encode_images(paths[:2])  # warm-up (and first-time export, not timed)
    start = time.perf_counter()
    enc.encode_images(paths)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    tensors = [enc._prepare(p) for p in paths]
    decode_1 = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, enc.decode_workers)) as pool:
        list(pool.map(enc._prepare, paths))
    decode_n = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, len(tensors), BATCH):
        enc._embed_image_batch(tensors[i:i + BATCH])
    network = time.perf_counter() - start
    return {"stage": name, "images_per_s": len(paths) / elapsed, "seconds": elapsed,
            "decode_1thread_s": decode_1, "decode_threads_s": decode_n, "decode_workers": enc.decode_workers,
            "network_s": network, "peak_rss_mb": _peak_rss_mb(), "runtimes": dict(enc.runtimes)}


def _lite_interleaved(paths: list[str], rounds: int = 7) -> dict:
    """lite's image network fp32 and int8 in one process, alternating batches of the decoded photos, so that
    load from other processes falls on both alike (the stages above run one after the other)."""
    import polymodal

    encoders = {p: polymodal.load_model("lite", precision=p, batch_size=BATCH) for p in ("fp32", "int8")}
    batch = [encoders["fp32"]._prepare(p) for p in paths[:BATCH]]
    times: dict[str, list[float]] = {p: [] for p in encoders}
    for enc in encoders.values():
        enc._embed_image_batch(batch)  # warm-up
    for _ in range(rounds):
        for p, enc in encoders.items():
            start = time.perf_counter()
            enc._embed_image_batch(batch)
            times[p].append(time.perf_counter() - start)
    med = {p: float(np.median(t)) for p, t in times.items()}
    return {"int8_over_fp32": med["int8"] / med["fp32"], "fp32_images_per_s": BATCH / med["fp32"],
            "int8_images_per_s": BATCH / med["int8"], "rounds": rounds,
            "runtimes": {p: e.runtimes.get("image", "?") for p, e in encoders.items()}}


def _model_only(hf_dir: str) -> dict:
    """Image-tower rate on pre-decoded tensors, and single short text query latency."""
    import torch

    import polymodal

    x = np.random.default_rng(0).standard_normal((BATCH, 3, 224, 224)).astype(np.float32)
    rates, latency, runtimes = {}, {}, {}
    for label, runtime, precision in (("torch-fp32", "torch", "fp32"), ("onnx-fp32", "onnx", "fp32"),
                                      ("onnx-int8", "onnx", "int8")):
        enc = polymodal.load_model(hf_dir, runtime=runtime, precision=precision)
        enc._embed_image_batch(list(torch.from_numpy(x[:4])))
        start, reps = time.perf_counter(), 3
        for _ in range(reps):
            enc._embed_image_batch(list(torch.from_numpy(x)))
        rates[label] = reps * BATCH / (time.perf_counter() - start)
        enc.encode_texts(["warm up"])
        times = []
        for q in ["a photo of a dog", "sunset over the sea", "a red car", "my cat sleeping"] * 15:
            t = time.perf_counter()
            enc.encode_texts([q])
            times.append((time.perf_counter() - t) * 1000)
        latency[label] = {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}
        runtimes[label] = dict(enc.runtimes)
    return {"model_only_images_per_s": rates, "text_query": latency, "runtimes": runtimes}


def _prepare(hf_dir: str) -> dict:
    """Make the one-time ONNX exports (fp32 and int8) so the timed stages measure steady state."""
    import polymodal

    start = time.perf_counter()
    runtimes = {p: polymodal.load_model(hf_dir, precision=p).runtimes for p in ("fp32", "int8")}
    return {"export_seconds": time.perf_counter() - start, "runtimes": runtimes, "peak_rss_mb": _peak_rss_mb()}


def _run_child(args: list[str]) -> dict:
    res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"stage {args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _machine() -> str:
    import onnxruntime
    import torch

    return f"{machine()}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"


def _off_diagonal(emb: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Mean and max cosine of photo i to the reference's photo j, i != j: the parity column's floor."""
    sims = emb @ ref.T
    off = sims[~np.eye(len(emb), dtype=bool)]
    return (float(off.mean()), float(off.max())) if off.size else (float("nan"), float("nan"))


def _runtimes(r: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in r.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--paths", help=argparse.SUPPRESS)
    args = ap.parse_args()
    load_before = load_average()

    import vitb32

    hf_dir, oc_dir = vitb32.build(OUT)
    if args.stage:
        paths = json.loads(Path(args.paths).read_text()) if args.paths else []
        if args.stage == "prepare":
            result = _prepare(str(hf_dir))
        elif args.stage == "lite-interleaved":
            result = _lite_interleaved(paths)
        elif args.stage == "model-only":
            result = _model_only(str(hf_dir))
        else:
            result = _stage(args.stage, paths, str(hf_dir), str(oc_dir))
        print(json.dumps(result))
        return

    print(f"weights identical in both references: max feature difference {vitb32.check_same_weights(hf_dir, oc_dir):.1e}")
    paths = [str(p) for p in make_photos(args.n)]
    listing = OUT / "paths.json"
    listing.write_text(json.dumps(paths))
    prep = _run_child(["--stage", "prepare"])
    print(f"exports ready ({prep['export_seconds']:.0f} s if made now; peak RSS {prep['peak_rss_mb']:.0f} MB): "
          f"{prep['runtimes']}", flush=True)
    stages = ["ref-transformers", "ref-open_clip", "polymodal-torch", "polymodal-fp32", "polymodal-int8"]
    results = {}
    for stage in stages:
        results[stage] = _run_child(["--stage", stage, "--paths", str(listing)])
        print(f"{stage:18s} {results[stage]['images_per_s']:6.1f} img/s  peak RSS {results[stage]['peak_rss_mb']:.0f} MB"
              f"  ran on {_runtimes(results[stage]['runtimes'])}", flush=True)
    lite = {}
    for stage in ("lite-fp32", "lite-int8"):
        lite[stage] = _run_child(["--stage", stage, "--paths", str(listing)])
        print(f"{stage:18s} {lite[stage]['images_per_s']:6.1f} img/s  ran on {_runtimes(lite[stage]['runtimes'])}",
              flush=True)
    inter = _run_child(["--stage", "lite-interleaved", "--paths", str(listing)])
    ref = np.load(OUT / "emb-ref-transformers.npy")
    ref_oc = np.load(OUT / "emb-ref-open_clip.npy")
    fastest = max(results["ref-transformers"]["images_per_s"], results["ref-open_clip"]["images_per_s"])
    extra = _run_child(["--stage", "model-only"])
    rows = []
    for stage in stages:
        emb = np.load(OUT / f"emb-{stage}.npy")
        cos = (emb * ref).sum(1)
        cos_oc = (emb * ref_oc).sum(1)
        off_mean, off_max = _off_diagonal(emb, ref)
        r = results[stage]
        rows.append(f"| {stage} | {_runtimes(r['runtimes'])} | {r['images_per_s']:.1f} | "
                    f"{r['images_per_s'] / fastest:.2f}x | {r['peak_rss_mb']:.0f} | {cos.mean():.4f} / {cos.min():.4f} | "
                    f"{cos_oc.mean():.4f} / {cos_oc.min():.4f} | {off_mean:.4f} / {off_max:.4f} |")
    lite_rows = [
        f"| {stage} | {_runtimes(r['runtimes'])} | {r['images_per_s']:.1f} | {r['seconds']:.1f} | "
        f"{r['decode_1thread_s']:.1f} | {r['decode_threads_s']:.1f} ({r['decode_workers']} threads) | "
        f"{r['network_s']:.1f} | {len(paths) / r['network_s']:.1f} | {r['peak_rss_mb']:.0f} |"
        for stage, r in lite.items()
    ]
    mo = extra["model_only_images_per_s"]
    tq = extra["text_query"]
    ran = extra["runtimes"]
    table = "\n".join([
        "## Embedding speed on CPU (issue 4)",
        "",
        f"Machine: {_machine()}. N = {args.n} photos of 4000x3000 (JPEG q90), ViT-B/32 CLIP with **random "
        f"weights** (the real FLOPs; int8 parity on random weights says little about real ones: see the int8 on "
        f"real weights section), batch {BATCH}. Each pipeline in its own process, each after the same untimed "
        "warm-up on 2 photos.",
        "",
        "| pipeline | ran on | images/s | vs faster reference | peak RSS MB | cosine to transformers ref (mean / min) "
        "| cosine to open_clip ref (mean / min) | off-diagonal: photo i to ref photo j != i (mean / max) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Model only (pre-decoded 224x224 tensors, batch {BATCH}): "
        + ", ".join(f"{k} (ran on {ran[k].get('image', '?')}) {v:.1f} images/s" for k, v in mo.items()) + ".",
        "",
        f"`lite` (EfficientNet-Lite0 + MiniLM, **real weights**) indexing the same {args.n} photos end to end "
        "(`encode_images`, decode threads overlapping the network), then the same photos decoded and "
        "preprocessed alone, and the image network alone on the decoded tensors (batch "
        f"{BATCH}): where the time goes.",
        "",
        "| pipeline | ran on | images/s end to end | end to end s | decode alone, 1 thread s | decode alone, "
        "threaded s | network alone s | network alone images/s | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *lite_rows,
        "",
        f"lite's image network alone, fp32 and int8 alternating in one process ({inter['rounds']} rounds of a "
        f"batch of {BATCH} decoded photos, default threads): int8 takes {inter['int8_over_fp32']:.2f}x the fp32 "
        f"time ({inter['fp32_images_per_s']:.1f} vs {inter['int8_images_per_s']:.1f} images/s; ran on "
        f"{inter['runtimes']['fp32']}, {inter['runtimes']['int8']}).",
        "",
        "Single short text query (text tower, no padding to 77): "
        + ", ".join(f"{k} (ran on {ran[k].get('text', '?')}) p50 {v['p50_ms']:.1f} ms / p95 {v['p95_ms']:.1f} ms"
                    for k, v in tq.items()) + ".",
    ])
    print()
    print(table)
    if args.write:
        write_section(HERE / "RESULTS.md", "embed_speed", table, load_before=load_before)


if __name__ == "__main__":
    main()
