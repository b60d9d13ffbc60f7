"""Region search Recall@1: does a box around a thing in a picture find the photo of that thing?

    python benchmarks/region_search.py [--scenes 40] [--model lite] [--write]

A library holds the sample photos of the explain pointing game (cat, coffee, rocket, motorbike, horse,
flower, temple, astronaut from scikit-image and scikit-learn). Each scene pastes three of them at seeded
places on a textured canvas (``polymodal.explain.pointing.compose_scene``, seeds from 3000: never used to
tune anything). Each object is searched for with its box (``Library.search(image=scene, box=...)``, what
``search --image FILE --box`` runs), and, for comparison, with the whole scene and with the box grown by 50%
each side (a loosely drawn box). Recall@1: the object's own photo ranks first. Seconds per query are wall time
with the model loaded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_md import load_average, write_section  # noqa: E402


def _grow(box: tuple[int, int, int, int], size: tuple[int, int], by: float = 0.5) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * by, (y1 - y0) * by
    return (max(0, round(x0 - dx)), max(0, round(y0 - dy)), min(size[0], round(x1 + dx)), min(size[1], round(y1 + dy)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--model", default="lite")
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    load = load_average()

    import polymodal
    from polymodal.explain.pointing import compose_scene, sample_photos
    from polymodal.library import Library

    encoder = polymodal.load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for name, src in sample_photos().items():
            shutil.copy(src, photos / f"{name}{src.suffix}")
        lib = Library.open(Path(tmp) / "lib", model=encoder)
        lib.add([photos])
        right = {"box": 0, "box grown 50% each side": 0, "whole scene": 0}
        queries, seconds = 0, 0.0
        for seed in range(3000, 3000 + args.scenes):
            scene = compose_scene(seed)
            whole = Path(lib.search(image=scene.image, k=1)[0].path).stem
            for obj in scene.objects:
                queries += 1
                start = time.perf_counter()
                found = Path(lib.search(image=scene.image, box=obj.box, k=1)[0].path).stem
                seconds += time.perf_counter() - start
                right["box"] += found == obj.name
                loose = lib.search(image=scene.image, box=_grow(obj.box, scene.image.size), k=1)
                right["box grown 50% each side"] += Path(loose[0].path).stem == obj.name
                right["whole scene"] += whole == obj.name
    lines = [
        f"## Region search (`benchmarks/region_search.py`, model `{args.model}`)",
        "",
        f"{args.scenes} scenes x 3 objects = {queries} queries against a library of the {len(sample_photos())} "
        "sample photos; Recall@1 = the object's own photo ranks first. The whole scene can be right for at most "
        f"one of its three objects. {1000 * seconds / queries:.0f} ms per box query (model loaded).",
        "",
        "| query | Recall@1 |",
        "| --- | --- |",
        *(f"| {name} | {n / queries:.3f} ({n}/{queries}) |" for name, n in right.items()),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(HERE / "RESULTS.md", "region_search", text, load_before=load)


if __name__ == "__main__":
    main()
