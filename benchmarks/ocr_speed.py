"""OCR speed: detection time and recall against the detector's input size on 12 MP photos, and throughput on
pictures with little text and with a lot of it.

    python benchmarks/ocr_speed.py [--photos 2] [--sizes 960,1280,1600,2048] [--write]

Test pictures are scikit-image / scikit-learn sample photos upscaled to 4000 x 3000 (12 MP) with 24 lines of
English drawn on pale labels at 24, 36 and 56 px (8 each; at 24 px the x-height is ~13 px, small print in a
photo of a notice board). A drawn line is *detected* when a box holds its centre and covers at least half of
it (boxes are grown past the ink, so IoU would undercount thin lines), and *read* when the recognised text
equals it (normalised). Throughput runs the default engine end to end (decode, detect,
recognise) on 12 MP JPEGs: "little text" carry one label, "text-heavy" carry the 24 lines. Peak RSS is the
process's after the throughput runs (before the size sweep). ``--write`` puts the tables in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_md import write_section  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "sklearn:china.jpg"]
WORDS = ("harbour station market north river open daily closed tickets platform museum garden bakery route "
         "exit bridge summer winter library coffee hotel street avenue square").split()


def photo(name: str):
    from PIL import Image

    if name.startswith("sklearn:"):
        import sklearn.datasets

        path = Path(sklearn.datasets.__file__).parent / "images" / name.split(":", 1)[1]
    else:
        import skimage

        path = Path(skimage.__file__).parent / "data" / name
    return Image.open(path).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)


def draw(picture, count: int, seed: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    drawn = []
    for i in range(count):
        size = (24, 36, 56)[i % 3]
        f = ImageFont.truetype(FONT, size)
        text = " ".join(rng.choice(WORDS) for _ in range(3)) + f" {rng.randint(10, 999)}"
        left, top, right, bottom = f.getbbox(text)
        pad = size // 3
        label = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), (245, 242, 230))
        ImageDraw.Draw(label).text((pad - left, pad - top), text, font=f, fill=(20, 20, 30))
        x, y = 100 + (i % 3) * 1300, 100 + (i // 3) * 360 + rng.randint(0, 60)
        picture.paste(label, (x, y))
        drawn.append((text, (x + pad, y + pad, x + pad + right - left, y + pad + bottom - top)))
    return drawn


def covers(box, line) -> bool:
    """``box`` holds the centre of ``line`` and at least half its area."""
    cx, cy = (line[0] + line[2]) / 2, (line[1] + line[3]) / 2
    ix = max(0, min(box[2], line[2]) - max(box[0], line[0]))
    iy = max(0, min(box[3], line[3]) - max(box[1], line[1]))
    inside = box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
    return inside and ix * iy >= 0.5 * (line[2] - line[0]) * (line[3] - line[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=2, help="12 MP photos per measurement (default 2)")
    ap.add_argument("--sizes", default="960,1280,1600,2048", help="detector long sides to try")
    ap.add_argument("--write", action="store_true", help="write the tables to benchmarks/RESULTS.md")
    args = ap.parse_args()
    import numpy as np

    from polymodal.ocr import detect, load_engine, read_text
    from polymodal.ocr.evaluate import normalise
    from polymodal.ocr.rapid import DET_MAX_SIDE, DET_MIN_SIDE, RapidEngine, bundled_models

    names = PHOTOS[:args.photos]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    engine = load_engine()
    load_s = time.perf_counter() - t0

    # throughput, end to end from JPEG files, at the default detection size
    folder = Path(tempfile.mkdtemp(prefix="ocr-bench-"))
    sparse, dense, truth = [], [], []
    for i, name in enumerate(names):
        p = photo(name)
        draw(p, 1, seed=100 + i)
        p.save(folder / f"sparse{i}.jpg", quality=90)
        sparse.append(folder / f"sparse{i}.jpg")
        p = photo(name)
        truth.append(draw(p, 24, seed=i))
        p.save(folder / f"dense{i}.jpg", quality=90)
        dense.append(folder / f"dense{i}.jpg")
    read_text(sparse[:1], engine=engine)  # warm-up: first-run allocations
    through = {}
    for label, files in (("little text (1 label)", sparse), ("text-heavy (24 lines)", dense)):
        t0 = time.perf_counter()
        results = read_text(files, engine=engine)
        dt = time.perf_counter() - t0
        through[label] = (len(files) / dt, sum(len(r.lines) for r in results) / len(files))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # detection size sweep on the text-heavy photos
    from PIL import Image

    sweep = []
    for side in [int(s) for s in args.sizes.split(",")]:
        sized = RapidEngine(bundled_models(), det_max_side=side)
        det_times, found, read = [], 0, 0
        for path, drawn in zip(dense, truth):
            img = Image.open(path).convert("RGB")
            t0 = time.perf_counter()
            inp = detect.prepare(img, side, DET_MIN_SIDE)
            prob = sized._det({"x": inp.tensor})[0, 0]
            quads = detect.boxes_from_map(prob, inp, *img.size)
            det_times.append(time.perf_counter() - t0)
            boxes = [(q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()) for q, _ in quads]
            found += sum(1 for _, b in drawn if any(covers(d, b) for d in boxes))
            texts = {normalise(ln.text) for ln in read_text([img], engine=sized)[0].lines}
            read += sum(1 for t, _ in drawn if normalise(t) in texts)
        total = sum(len(d) for d in truth)
        sweep.append((side, float(np.median(det_times)), found / total, read / total))
    load_after = os.getloadavg()[0]

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    lines = [
        "## OCR speed (benchmarks/ocr_speed.py)",
        "",
        f"Commit {commit}, {datetime.date.today()}. Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; load average {load_before:.1f} before, {load_after:.1f} after "
        "(other jobs shared the cores: times are upper bounds). Engine load (3 ONNX sessions): "
        f"{load_s:.2f} s. {len(names)} photos of 4000 x 3000.",
        "",
        "Detection size (long side the detector sees; lines always recognised from the full picture):",
        "",
        "| det max side | det time (median) | lines detected | lines read exactly |",
        "| --- | --- | --- | --- |",
        *(f"| {s}{' (default)' if s == DET_MAX_SIDE else ''} | {t:.2f} s | {100 * f:.0f}% | {100 * r:.0f}% |"
          for s, t, f, r in sweep),
        "",
        f"Throughput at the default size ({DET_MAX_SIDE}), decode included; targets ≥ 3 images/s with little "
        "text, ≥ 1 image/s text-heavy, ≤ 1.5 GB:",
        "",
        "| pictures | images/s | lines per picture |",
        "| --- | --- | --- |",
        *(f"| {k} | {v[0]:.2f} | {v[1]:.1f} |" for k, v in through.items()),
        "",
        f"Peak RSS: {peak_mb:.0f} MB.",
    ]
    print("\n".join(lines))
    if args.write:
        write_section(HERE / "RESULTS.md", "ocr_speed", "\n".join(lines))


if __name__ == "__main__":
    main()
