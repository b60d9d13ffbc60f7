"""How soon a photo added to a watched folder is searchable (``index --watch``, library/watch.py).

    python benchmarks/watch_latency.py [--files 20] [--model lite] [--write]

A watcher runs in a thread (its own Library object) on a temporary folder; the photos of scikit-image and
scikit-learn are copied in one at a time, each as a new file written and closed, and a second Library object
(as a search in another process would) polls until the file's item is found. Reported: seconds from the
file's close to searchable (median, p90, max; target 2 s), and how long each pass held the writer lock.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_md import load_average, write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--model", default="lite")
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    load = load_average()

    import skimage
    import sklearn.datasets

    import polymodal
    from polymodal.library import Library
    from polymodal.library.watch import WatchBatch, watch

    sources = sorted(p for folder in (Path(skimage.__file__).parent / "data",
                                      Path(sklearn.datasets.__file__).parent / "images")
                     for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg") and p.stat().st_size > 20_000)
    encoder = polymodal.load_model(args.model)
    latencies: list[float] = []
    batches: list[WatchBatch] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        writer = Library.open(Path(tmp) / "lib", model=encoder)
        reader = Library.open(Path(tmp) / "lib", model=encoder)
        stop = threading.Event()
        thread = threading.Thread(target=watch, args=(writer, [folder]),
                                  kwargs={"stop": stop, "on_batch": batches.append}, daemon=True)
        thread.start()
        while not batches:
            time.sleep(0.05)
        for i in range(args.files):
            src = sources[i % len(sources)]
            dest = folder / f"{i:03d}-{src.name}"
            if i >= len(sources):  # the same bytes again would be a duplicate of an item: make them differ
                data = src.read_bytes() + i.to_bytes(4, "little")
                dest.write_bytes(data)
            else:
                shutil.copyfile(src, dest)
            closed = time.monotonic()
            while reader.get(dest) is None:
                time.sleep(0.02)
            latencies.append(time.monotonic() - closed)
            time.sleep(0.5)
        stop.set()
        thread.join(10)
    passes = [b.seconds for b in batches[1:] if b.changes]
    q = statistics.quantiles(latencies, n=10)
    lines = [
        f"## Watched folder: time to searchable (`benchmarks/watch_latency.py`, model `{args.model}`)",
        "",
        f"{args.files} photos (scikit-image / scikit-learn samples, up to 1000 x 872 pixels) copied one at a time into a watched "
        "folder; seconds from the file's close until a second Library object finds its item. Target: 2 s.",
        "",
        "| | median | p90 | max |",
        "| --- | --- | --- | --- |",
        f"| close to searchable | {statistics.median(latencies):.2f} s | {q[-1]:.2f} s | {max(latencies):.2f} s |",
        f"| a pass's hold of the writer lock ({len(passes)} passes) | {statistics.median(passes):.2f} s | "
        f"{statistics.quantiles(passes, n=10)[-1]:.2f} s | {max(passes):.2f} s |",
        "",
        "Where the time goes: watchfiles gathers events for 0.3 s (`DEBOUNCE_MS`), the file must then hold still for "
        "0.4 s (`SETTLE`, so a copy in progress is not read), and the pass scans the folder, decodes, embeds and "
        "commits.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(HERE / "RESULTS.md", "watch_latency", text, load_before=load)


if __name__ == "__main__":
    main()
