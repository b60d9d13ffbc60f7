"""Fusion on pictures: three tasks x {early, late, hybrid, logistic regression, MLP} x two encoders (issue 16).

    python benchmarks/fusion_tasks.py [--encoders lite,vitb32] [--threads 2] [--write]

The tasks are the end-to-end tests' (tests/fusion/real_tasks.py: 360 train, 90 validation, 150 test rows):
colour agreement (only the agreement carries the label), a left/right relation (only where things are
carries it) and colour evidence from both modalities, scored also with the text missing at test time.
Encoders: ``lite`` (real EfficientNet-Lite0 + MiniLM weights; pooled = ConSE + 1280-d backbone features,
tokens = the 7x7 map and MiniLM token states) and a ViT-B/32-sized CLIP with random weights
(benchmarks/vitb32.py; pooled = its embeddings, tokens = patch tokens and text token states), which says what
the architecture and the trainer do when the features know nothing. Each method is trained with the library's
defaults; time is training time, memory the peak resident memory above the level before training.
``--write`` puts the table in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "fusion_tasks"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "fusion"))

TASKS = ("colour", "relation", "evidence")
METHODS = ("early", "late", "hybrid", "baseline_logreg", "baseline_mlp")


class PeakRss:
    """Peak resident memory above the level at entry, sampled every 10 ms from /proc (MB)."""

    def __enter__(self) -> PeakRss:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def mb(self) -> float:
        return (self.peak - self.base) / 2**20


def load_encoder(name: str):
    from polymodal.models import load_model

    if name == "lite":
        return load_model("lite")
    from vitb32 import build

    hf_dir, _ = build(OUT / "models")
    return load_model(str(hf_dir), runtime="torch")  # torch: the patch tokens come from its vision tower


def features(encoder, data: Path):
    """The task's rows encoded (pooled and tokens), split by their split field."""
    from polymodal.fusion.data import check_classes, read_dataset
    from polymodal.fusion.features import encode_rows, row_modalities

    ds = read_dataset(data, supported=row_modalities(encoder))
    fs, _, kept, _ = encode_rows(ds.rows, ds.modalities, encoder, tokens=True, source=str(data))
    rows = [ds.rows[i] for i in kept]
    classes = check_classes(ds, "label")
    fs.labels = np.array([classes.index(r.label) for r in rows], dtype=np.int64)
    splits = {s: np.array([i for i, r in enumerate(rows) if r.split == s]) for s in ("train", "val", "test")}
    return classes, {s: fs.subset(idx) for s, idx in splits.items()}


def run_method(method: str, classes, parts) -> dict:
    from polymodal.fusion import FusionConfig, TrainConfig, evaluate, fit
    from polymodal.fusion.baselines import fit_baseline
    from polymodal.fusion.pipeline import FusionOptions

    train, val, test = parts["train"], parts["val"], parts["test"]
    with PeakRss() as mem:
        start = time.perf_counter()
        if method.startswith("baseline_"):
            result = fit_baseline(method, train, val, test, classes)
            seconds, acc = result.seconds, result.test.accuracy
            from polymodal.fusion.baselines import pooled_matrix

            blind = test.without("text")
            missing = float((result.model.predict(pooled_matrix(blind)) == blind.labels).mean())
        else:
            from dataclasses import asdict

            layouts = train.token_layouts if method == "hybrid" else ()
            config = FusionConfig(method, train.modalities, train.dims, len(classes), **asdict(FusionOptions()),
                                  token_layouts=layouts)
            model = fit(config, train, val, TrainConfig(), classes=classes).model
            seconds = time.perf_counter() - start
            acc = evaluate(model, test, classes).accuracy
            missing = evaluate(model, test.without("text"), classes).accuracy
    return {"accuracy": acc, "no_text": missing, "seconds": seconds, "mb": mem.mb}


def table(results: dict) -> str:
    lines = ["| task | encoder | method | test accuracy | test accuracy, text missing | training s | peak MB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (task, enc, method), r in results.items():
        lines.append(f"| {task} | {enc} | {method} | {r['accuracy']:.3f} | {r['no_text']:.3f} | "
                     f"{r['seconds']:.1f} | {r['mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoders", default="lite,vitb32")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    import torch
    from real_tasks import TEST, TRAIN, VAL, make_tasks
    from results_md import load_average

    torch.set_num_threads(args.threads)
    load_before = load_average()
    data_dir = OUT / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    files = make_tasks(data_dir)
    results: dict = {}
    for enc_name in args.encoders.split(","):
        encoder = load_encoder(enc_name)
        for task in args.tasks.split(","):
            t0 = time.perf_counter()
            classes, parts = features(encoder, files[task])
            print(f"{enc_name} {task}: features in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for method in METHODS:
                results[(task, enc_name, method)] = r = run_method(method, classes, parts)
                print(f"  {method}: {r}", file=sys.stderr)
    text = table(results)
    print(text)
    if args.write:
        from results_md import write_section

        body = (f"Fusion on rendered pictures ({TRAIN} train / {VAL} validation / {TEST} test rows per task, "
                "library defaults, seed 0). colour = does the sentence name the shape's colour; relation = is "
                "the red shape left of the blue one; evidence = a colour, named by the sentence and shown by the "
                "picture 96% of the time. \"text missing\" scores the same model on the test rows with the text masked "
                "(the baselines see zeros and the presence flag). Peak MB is resident memory above the level before "
                "that method trained, so memory freed by the method before it and reused reads as ~0.\n\n" + text)
        write_section(HERE / "RESULTS.md", "fusion_tasks",
                      "## Fusion on real encoders (benchmarks/fusion_tasks.py)\n\n" + body, load_before=load_before)


if __name__ == "__main__":
    main()
