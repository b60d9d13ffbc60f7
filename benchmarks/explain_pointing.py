"""The pointing game for ``polymodal explain``: does the heatmap's peak land on the object the text names?

    python benchmarks/explain_pointing.py [--scenes 40] [--sizes 384,512,640,768,960] [--no-window] [--write]

Scenes: three of scikit-image's and scikit-learn's photos (cat, coffee, rocket, motorbike, horse, flower,
temple, astronaut), each scaled to a long side of 170-240 pixels and pasted without overlap at seeded random
places on a 768 x 512 textured canvas (``polymodal.explain.pointing``). Each object is asked for by its query
("a cat", "a cup of coffee", ...); a hit is a peak inside its box (Zhang et al. 2016's pointing game). Scene
seeds start at 1000: the settings of ``cam`` were chosen on seeds 0-29, so these scenes are held out.

Methods: ``cam`` (lite's class-activation maps, on torch) at each input long side, and ``window`` (sliding
windows embedded by lite on its default ONNX runtime, the fallback every encoder has). Seconds per query are
wall time of ``polymodal.explain`` on a decoded picture with the model loaded (one untimed warm-up each),
text encoding included. ``--write`` puts the table in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_md import load_average, write_section  # noqa: E402

SEED_BASE = 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=40, help="scenes of 3 objects each (default 40: 120 queries)")
    ap.add_argument("--sizes", default="384,512,640,768,960", help="input long sides for cam")
    ap.add_argument("--window-scenes", type=int, default=None, help="scenes for window (default: all; it is slower)")
    ap.add_argument("--no-window", action="store_true", help="skip the sliding-window method")
    ap.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = ap.parse_args()
    load_before = load_average()

    import torch

    from polymodal.explain import explain
    from polymodal.explain.cam import torch_lite
    from polymodal.explain.pointing import compose_scene, play
    from polymodal.models import load_model

    torch.set_num_threads(min(4, torch.get_num_threads()))
    scenes = [compose_scene(SEED_BASE + i) for i in range(args.scenes)]
    rows: list[list[str]] = []
    per_object: dict[str, collections.Counter[str]] = {}

    lite_torch = torch_lite(None, "cpu")
    for side in (int(s) for s in args.sizes.split(",")):
        def point(image: Any, text: str, side: int = side) -> tuple[int, int]:
            return explain(image, text, lite_torch, method="cam", long_side=side).peak

        point(scenes[0].image, "a cat")  # warm-up: first-call allocations
        r = play(point, scenes, method="cam")
        rows.append([f"cam, long side {side}", _acc(r.hits, r.queries), f"{r.seconds_per_query:.3f}"])
        per_object[f"cam {side}"] = collections.Counter(name for _, name in r.misses)
        print(" | ".join(rows[-1]), flush=True)

    if not args.no_window:
        lite = load_model("lite")  # the default runtime: an ONNX bundle, as a user's window run would use

        def point_window(image: Any, text: str) -> tuple[int, int]:
            return explain(image, text, lite, method="window").peak

        point_window(scenes[0].image, "a cat")
        some = scenes[: args.window_scenes] if args.window_scenes else scenes
        r = play(point_window, some, method="window")
        rows.append([f"window ({lite.runtimes.get('image', '?')}), scales 0.6/0.4/0.3", _acc(r.hits, r.queries),
                     f"{r.seconds_per_query:.3f}"])
        per_object["window"] = collections.Counter(name for _, name in r.misses)
        print(" | ".join(rows[-1]), flush=True)

    # a uniformly random point hits an object with the share of the canvas its box covers
    chance = sum((o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) / (s.image.width * s.image.height)
                 for s in scenes for o in s.objects) / sum(len(s.objects) for s in scenes)
    misses = "; ".join(f"{k}: {', '.join(f'{n} {c}' for n, c in sorted(v.items())) or 'none'}"
                       for k, v in per_object.items())
    text = "\n".join([
        "## Explain: the pointing game (`benchmarks/explain_pointing.py`)",
        "",
        f"{len(scenes)} composed scenes ({sum(len(s.objects) for s in scenes)} queries; 3 photos on a 768 x 512 "
        f"canvas, seeds {SEED_BASE}+, held out from the seeds the settings were chosen on). Accuracy: share of "
        f"queries whose peak is inside the named object's box; a uniformly random point scores {chance:.2f}. "
        "Seconds per query: `polymodal.explain` on a decoded picture, model loaded, text encoding included.",
        "",
        "| method | accuracy | s / query |",
        "| --- | --- | --- |",
        *(f"| {' | '.join(r)} |" for r in rows),
        "",
        f"Misses by object: {misses}.",
    ])
    print(text)
    if args.write:
        write_section(HERE / "RESULTS.md", "explain_pointing", text, load_before=load_before)


def _acc(hits: int, queries: int) -> str:
    return f"{hits / queries:.3f} ({hits}/{queries})"


if __name__ == "__main__":
    main()
