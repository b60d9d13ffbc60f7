"""int8 recipes side by side on the real ``lite`` towers (EfficientNet-Lite0 + all-MiniLM-L6-v2), vs fp32 ONNX.

    python benchmarks/int8_real.py [--threads 1] [--write]

Held-out data, never used for calibration: 400 ImageNet class definitions (timm's synset file) and 140 views
(whole, mirrored, three crops) of the scikit-image / scikit-learn photos. Calibration is what the runtime has
at hand, ``encoder.sample_inputs(network)``: synthetic pictures and matplotlib's two sample photos, SAMPLE_TEXTS
and 32 ImageNet-1k definitions (left out of the held-out sentences). For each candidate:
min/mean cosine to fp32 (image: raw logits, and the ConSE embedding users see), top-10 neighbour agreement,
batch 1 against batch 32 (text), whether each photo's own query still ranks it first, text query p50 latency
at batch 1 and image throughput at batch 16, as ratios to fp32 measured interleaved in this process.
``--write`` puts the table in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "int8_real"
sys.path.insert(0, str(HERE))
import int8_pointwise  # noqa: E402 - a benchmark helper next to this file

#: (photo file, a query that should find it first) over the photo set
QUERIES = (
    ("chelsea.png", "a cat"), ("coffee.png", "a cup of coffee"), ("rocket.jpg", "a rocket"),
    ("astronaut.png", "an astronaut"), ("motorcycle_left.png", "a motorbike"), ("horse.png", "a horse"),
    ("flower.jpg", "a flower"), ("china.jpg", "a temple"), ("coins.png", "coins"), ("brick.png", "a brick wall"),
)
TEXT_QUERIES = ["a cat", "a cup of coffee", "a rocket on its launch pad", "an astronaut in a white suit",
                "a red motorbike"]


def _photos() -> list[Path]:
    import skimage
    import sklearn.datasets

    folders = [Path(skimage.__file__).parent / "data", Path(sklearn.datasets.__file__).parent / "images"]
    return sorted(p for d in folders for p in d.iterdir() if p.suffix in (".png", ".jpg"))


def _data(encoder) -> dict:
    import timm
    from PIL import ImageOps

    from polymodal.media.images import load_image
    from polymodal.models.base import real_sentences

    def pix(img) -> np.ndarray:
        return np.asarray(encoder.preprocess_image(img), dtype=np.float32)

    photos, views = _photos(), []
    for p in photos:
        img = load_image(p)
        w, h = img.size
        views += [img, ImageOps.mirror(img), img.crop((0, 0, w * 3 // 4, h * 3 // 4)),
                  img.crop((w // 4, h // 4, w, h)), img.crop((w // 8, h // 8, w * 7 // 8, h * 7 // 8))]
    synsets = Path(timm.__file__).parent / "data" / "_info" / "imagenet_synset_to_definition.txt"
    calibrated = set(real_sentences())
    lines = [ln.split("\t", 1)[1].strip() for ln in synsets.read_text().splitlines() if "\t" in ln]
    lines = [ln for ln in lines if ln not in calibrated]
    order = np.random.default_rng(0).permutation(len(lines))
    return {
        "names": [p.name for p in photos],
        "whole": np.stack([pix(load_image(p)) for p in photos]),
        "views": np.stack([pix(v) for v in views]),
        "image_cal": [encoder.sample_inputs("image")],
        "text_cal": [encoder.sample_inputs("text")],
        "sentences": [lines[i] for i in order[:400]],
    }


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _ort_dynamic(per_channel: bool) -> Callable[[Path, Path, str, list], None]:
    def run(src: Path, dst: Path, network: str, calibration: list) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         per_channel=per_channel)
    return run


def _ort_static_convs(select: str, keep_fp32: int = 0, reduce_range: bool = False
                      ) -> Callable[[Path, Path, str, list], None]:
    """Static QDQ int8 (per-channel weights, MinMax activations) of the convolutions ``select`` names: "all",
    "pointwise" (1x1), "late pointwise" (the recipe's: the second half of the 1x1 ones), or "late" (those and
    every convolution after the first of them); the first ``keep_fp32`` of the chosen stay fp32."""
    def run(src: Path, dst: Path, network: str, calibration: list) -> None:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        from polymodal.models.quantise import _late_pointwise_convs

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter([{k: v[i:i + 8] for k, v in b.items()} for b in calibration
                                   for i in range(0, len(next(iter(b.values()))), 8)])

            def get_next(self) -> dict | None:
                return next(self.items, None)

        model = onnx.load(str(src))
        convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
        late = _late_pointwise_convs(model)
        pointwise = [n for n in convs if n in _pointwise_names(model)]
        chosen = {"all": convs, "pointwise": pointwise, "late pointwise": late,
                  "late": convs[convs.index(late[0]):]}[select][keep_fp32:]
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, op_types_to_quantize=["Conv"], activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_quantize=chosen)
    return run


def _pointwise_names(model) -> set[str]:
    from int8_pointwise import _pointwise

    return {n.name for n in _pointwise(model)}


def _recipe(use_calibration: bool) -> Callable[[Path, Path, str, list], None]:
    def run(src: Path, dst: Path, network: str, calibration: list) -> None:
        from polymodal.models.quantise import quantise

        # compared as the runtime compares when it chooses the int8 convolutions: lite's ConSE embedding
        quantise(src, dst, network, calibration if use_calibration else [], COMPARE.get(network))
    return run


#: what each network's outputs are compared as (set in measure(): lite's ConSE for the image network)
COMPARE: dict[str, Callable] = {}


CANDIDATES: dict[str, dict[str, Callable[[Path, Path, str, list], None]]] = {
    "text": {
        "ort dynamic, per-tensor (today)": _ort_dynamic(False),
        "ort dynamic, per-channel": _ort_dynamic(True),
        "per-token int8, no calibration": _recipe(False),
        "per-token int8 + SmoothQuant (recipe)": _recipe(True),
    },
    "image": {
        "ort dynamic MatMul/Gemm (before)": _ort_dynamic(False),
        "static QDQ convs, all": _ort_static_convs("all"),
        "static QDQ convs, all but the first 15": _ort_static_convs("all", keep_fp32=15),
        "static QDQ 1x1 convs, all": _ort_static_convs("pointwise"),
        "static QDQ late 1x1 + late depthwise": _ort_static_convs("late"),
        "static QDQ late 1x1 (all 16)": _ort_static_convs("late pointwise"),
        "static QDQ late 1x1, 7-bit weights": _ort_static_convs("late pointwise", reduce_range=True),
        "per-pixel dynamic 1x1 convs, all": int8_pointwise.per_pixel(1.0),
        "per-pixel dynamic 1x1 convs, late half": int8_pointwise.per_pixel(0.5),
        "recipe (late 1x1 static int8 by sensitivity, classifier per-token)": _recipe(True),
    },
}


def _exports(encoder) -> dict[str, Path]:
    """fp32 ONNX of both towers, exported (once per weights) by the runtime's own exporter."""
    from polymodal.models.runtime import export_network

    folder = OUT / f"fp32-{encoder.weights_identity()[:16]}"
    return {net: export_network(encoder, net, "fp32", folder)[0] for net in ("image", "text")}


def measure(threads: int) -> tuple[list[dict], dict]:
    import polymodal

    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's quantisers advise on the root logger
    encoder = polymodal.load_model("lite", runtime="torch")
    fp32 = _exports(encoder)
    data = _data(encoder)
    OUT.mkdir(parents=True, exist_ok=True)
    tok = encoder.text_inputs

    def run_text(s, texts: list[str], bs: int = 32) -> np.ndarray:
        return np.concatenate([s.run(None, tok(texts[i:i + bs], truncate=True))[0] for i in range(0, len(texts), bs)])

    def run_image(s, x: np.ndarray, bs: int = 16) -> np.ndarray:
        return np.concatenate([s.run(None, {"pixel_values": x[i:i + bs]})[0] for i in range(0, len(x), bs)])

    def conse(logits: np.ndarray) -> np.ndarray:
        from polymodal.models.base import normalise

        return normalise(encoder.postprocess_image(logits))

    COMPARE["image"] = encoder.postprocess_image
    ref = {"text": _session(fp32["text"], threads), "image": _session(fp32["image"], threads)}
    ref_text = run_text(ref["text"], data["sentences"])
    ref_views = run_image(ref["image"], data["views"])
    ref_q = run_text(ref["text"], [q for _, q in QUERIES])
    ref_photos = conse(run_image(ref["image"], data["whole"]))

    def firsts(q: np.ndarray, photos: np.ndarray) -> int:
        sims = q @ photos.T
        return sum(int(data["names"][int(np.argmax(sims[i]))] == name) for i, (name, _) in enumerate(QUERIES))

    rows = []
    sessions = {}
    for net, candidates in CANDIDATES.items():
        cal = data["text_cal"] if net == "text" else data["image_cal"]
        for label, make in candidates.items():
            path = OUT / f"{net}-{len(sessions)}.onnx"
            t0 = time.perf_counter()
            make(fp32[net], path, net, cal)
            took = time.perf_counter() - t0
            s = sessions[(net, label)] = _session(path, threads)
            row = {"network": net, "candidate": label, "quantise_s": took}
            if net == "text":
                got = run_text(s, data["sentences"])
                c = _cos(ref_text, got)
                one = np.concatenate([s.run(None, tok([t], truncate=True))[0] for t in data["sentences"][:40]])
                row.update(min=c.min(), mean=c.mean(), agree=_agreement(ref_text, got),
                           batch1_diff=float(np.abs(one - got[:40]).max()))
            else:
                got = run_image(s, data["views"])
                c, ce = _cos(ref_views, got), _cos(conse(ref_views), conse(got))
                row.update(min=c.min(), mean=c.mean(), conse_min=ce.min(), conse_mean=ce.mean(),
                           agree=_agreement(conse(ref_views), conse(got)),
                           top1=float(np.mean(ref_views.argmax(1) == got.argmax(1))))
            rows.append(row)
    # ranking: each photo's own query under fp32 and under each candidate (the other tower at fp32)
    base_first = firsts(ref_q, ref_photos)
    for row in rows:
        s = sessions[(row["network"], row["candidate"])]
        if row["network"] == "text":
            row["firsts"] = firsts(run_text(s, [q for _, q in QUERIES]), ref_photos)
        else:
            row["firsts"] = firsts(ref_q, conse(run_image(s, data["whole"])))
    _speed(rows, sessions, ref, tok, data)
    meta = {"firsts_fp32": base_first, "n_queries": len(QUERIES), "threads": threads,
            "n_sentences": len(data["sentences"]), "n_views": len(data["views"])}
    return rows, meta


def _agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each sample's k nearest samples under fp32 that are still among its k nearest."""
    def nearest(x: np.ndarray) -> np.ndarray:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sim = x @ x.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1)[:, :k]

    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(nearest(a), nearest(b))]))


def _speed(rows: list[dict], sessions: dict, ref: dict, tok, data: dict, rounds: int = 40) -> None:
    """Interleaved rounds: every model runs once per round, so load on the shared machine hits all alike."""
    feeds = [tok([q], truncate=True) for q in TEXT_QUERIES]
    batch = {"pixel_values": data["views"][:16]}
    times: dict[tuple[str, str], list[float]] = {}
    models = [(("text", "fp32"), ref["text"]), (("image", "fp32"), ref["image"]), *sessions.items()]
    for _ in range(rounds):
        for key, s in models:
            t0 = time.perf_counter()
            if key[0] == "text":
                for f in feeds:
                    s.run(None, f)
                times.setdefault(key, []).append((time.perf_counter() - t0) / len(feeds))
            else:
                s.run(None, batch)
                times.setdefault(key, []).append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    for row in rows:
        key = (row["network"], row["candidate"])
        row["time_ratio"] = med[key] / med[(row["network"], "fp32")]
        row["abs"] = med[key] * 1e3 if row["network"] == "text" else 16 / med[key]
    rows.insert(0, {"network": "text", "candidate": "fp32", "abs": med[("text", "fp32")] * 1e3, "time_ratio": 1.0})
    rows.insert(0, {"network": "image", "candidate": "fp32", "abs": 16 / med[("image", "fp32")], "time_ratio": 1.0})


def table(rows: list[dict], meta: dict) -> str:
    def f(row: dict, key: str, fmt: str) -> str:
        return format(row[key], fmt) if key in row else "-"

    lines = [
        f"Text: min / mean cosine to fp32 over {meta['n_sentences']} held-out ImageNet definitions, top-10 "
        f"agreement, max |batch 1 - batch 32| over 40 of them, photo found first by its own query "
        f"(fp32: {meta['firsts_fp32']}/{meta['n_queries']}), p50 latency of a one-query batch "
        f"({meta['threads']} thread) and its ratio to fp32.",
        "",
        "| text candidate | min cos | mean cos | top-10 | b1 vs b32 | own photo first | p50 ms | x fp32 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in (r for r in rows if r["network"] == "text"):
        first = f"{r['firsts']}/{meta['n_queries']}" if "firsts" in r else "-"
        lines.append(f"| {r['candidate']} | {f(r, 'min', '.4f')} | {f(r, 'mean', '.5f')} | {f(r, 'agree', '.3f')} "
                     f"| {f(r, 'batch1_diff', '.1e')} | {first} | {r['abs']:.2f} | {r['time_ratio']:.2f} |")
    lines += [
        "",
        f"Image: cosine to fp32 over {meta['n_views']} views of the bundled photos, of the logits and of the ConSE "
        "embedding, top-10 agreement (ConSE), top-1 class agreement, own photo first, images/s at batch 16 and "
        "time ratio to fp32.",
        "",
        "| image candidate | logits min | logits mean | ConSE min | ConSE mean | top-10 | top-1 | own photo first "
        "| img/s | x fp32 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in (r for r in rows if r["network"] == "image"):
        first = f"{r['firsts']}/{meta['n_queries']}" if "firsts" in r else "-"
        lines.append(f"| {r['candidate']} | {f(r, 'min', '.4f')} | {f(r, 'mean', '.4f')} | {f(r, 'conse_min', '.4f')} "
                     f"| {f(r, 'conse_mean', '.5f')} | {f(r, 'agree', '.3f')} | {f(r, 'top1', '.3f')} | {first} "
                     f"| {r['abs']:.1f} | {r['time_ratio']:.2f} |")
    return "\n".join(lines)


def _stamp() -> str:
    import onnxruntime

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=HERE, check=False).stdout.strip()
    except OSError:
        commit = "?"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"commit {commit or '?'}, {datetime.date.today().isoformat()}, {platform.processor() or platform.machine()}"
            f" ({os.cpu_count()} CPUs), load average {load}, onnxruntime {onnxruntime.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads for every model")
    parser.add_argument("--write", action="store_true", help="write the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    stamp = _stamp()
    rows, meta = measure(args.threads)
    text = f"## int8 on the real lite towers (benchmarks/int8_real.py)\n\n{stamp}\n\n{table(rows, meta)}\n"
    print(text)
    if args.write:
        from results_md import write_section

        write_section(HERE / "RESULTS.md", "int8_real", text)


if __name__ == "__main__":
    main()
