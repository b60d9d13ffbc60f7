"""Fit and measure the relevance floor (src/polymodal/library/relevance.py) on labelled queries.

    python benchmarks/relevance_floor.py [--model lite] [--write]

The labelled set: the photos bundled with scikit-image and scikit-learn; each photo that shows one nameable
thing is named by two or three queries (``LABELS``), and ``NOTHING`` holds queries that no photo shows. Every
query is scored against every photo through the real search path's pieces: the model's embeddings, the
query's scores on the visual background of ``polymodal.models.calibration``, z-scores and evidence as
``relevance`` computes them. A (query, photo) pair is right when the photo is labelled with the query.

It fits the logistic ``confidence = 1 / (1 + exp(-(SLOPE * evidence + OFFSET)))`` on all pairs, chooses the
floor as the confidence cut with the best F1 on them, and prints both (the constants in relevance.py come
from here). Then, so the figures are not measured on the data they were fitted to, each query is held out
in turn: fitted on the other queries, cut, and the held-out query's right answers kept and wrong ones shown
are counted. Beside it: today's behaviour without a floor (the 10 nearest, whatever they are).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_md import load_average, write_section  # noqa: E402

LABELS = {
    "astronaut.png": ["an astronaut", "a woman in a spacesuit"],
    "brick.png": ["a brick wall", "bricks"],
    "camera.png": ["a man with a camera", "a photographer with a tripod"],
    "chelsea.png": ["a cat", "a tabby cat", "a kitten"],
    "clock_motion.png": ["a clock", "a wall clock"],
    "coffee.png": ["a cup of coffee", "coffee", "an espresso cup"],
    "coins.png": ["coins", "old coins"],
    "grass.png": ["grass", "a lawn"],
    "gravel.png": ["gravel", "pebbles"],
    "hubble_deep_field.jpg": ["galaxies in space", "the night sky full of stars"],
    "moon.png": ["the surface of the moon", "craters"],
    "motorcycle_left.png": ["a motorcycle", "a motorbike"],
    "motorcycle_right.png": ["a motorcycle", "a motorbike"],
    "page.png": ["a page of text", "a printed page"],
    "rocket.jpg": ["a rocket launch", "a space shuttle taking off"],
    "china.jpg": ["a temple", "a chinese pagoda"],
    "flower.jpg": ["a flower", "a pink flower", "a dahlia"],
    "retina.jpg": ["an eye", "a retina"],
}
NOTHING = ["a dog on the beach", "a bowl of soup", "a red car", "a snowy mountain", "a birthday cake",
           "a football match", "a sailing boat", "a laptop on a desk"]


def photos() -> list[Path]:
    import skimage
    import sklearn.datasets

    found: list[Path] = []
    for folder in (Path(skimage.__file__).parent / "data", Path(sklearn.datasets.__file__).parent / "images"):
        found += sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                        and p.stat().st_size > 20_000)
    return found


def pairs(model: str) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(queries, photo names, cosines [q, p], evidence [q, p], right [q, p])."""
    import polymodal
    from polymodal.library import relevance as rel
    from polymodal.models.calibration import reference_scores

    files = photos()
    enc = polymodal.load_model(model)
    images = enc.encode_images([str(p) for p in files])
    queries = sorted({q for qs in LABELS.values() for q in qs} | set(NOTHING))
    texts = enc.encode_texts(queries)
    cos = texts @ images.T
    ev = np.zeros_like(cos, dtype=np.float64)
    for i in range(len(queries)):
        background = reference_scores(texts[i], enc)["visual"]
        ev[i] = [rel.evidence(float(z)) for z in rel.zscores(cos[i], background)]
    names = [p.name for p in files]
    right = np.array([[q in LABELS.get(n, ()) for n in names] for q in queries])
    return queries, names, cos, ev, right


def fit(ev: np.ndarray, right: np.ndarray, beta: float = 1.0) -> tuple[float, float, float]:
    """(slope, offset, floor) on the given pairs; the floor maximises F-beta (beta > 1 favours recall)."""
    from sklearn.linear_model import LogisticRegression

    x, y = ev.reshape(-1, 1), right.reshape(-1)
    model = LogisticRegression(C=1e4).fit(x, y)
    slope, offset = float(model.coef_[0][0]), float(model.intercept_[0])
    conf = 1 / (1 + np.exp(-(slope * x[:, 0] + offset)))
    best, floor = -1.0, 0.5
    for cut in np.unique(np.round(conf, 3)):
        shown = conf >= cut
        tp = float((shown & y).sum())
        f1 = (1 + beta**2) * tp / (shown.sum() + beta**2 * y.sum()) if tp else 0.0
        if f1 > best:
            best, floor = f1, float(cut)
    return slope, offset, floor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lite")
    ap.add_argument("--beta", type=float, default=1.0, help="the floor maximises F-beta (default 1: F1)")
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    load = load_average()
    queries, names, cos, ev, right = pairs(args.model)
    slope, offset, floor = fit(ev, right, args.beta)
    print(f"SLOPE = {slope:.3f}\nOFFSET = {offset:.3f}\nFLOOR = {floor:.3f}")

    kept = wrong = answered_nothing = 0
    per_query = []
    for i, q in enumerate(queries):
        rest = np.arange(len(queries)) != i
        s, o, f = fit(ev[rest], right[rest], args.beta)
        conf = 1 / (1 + np.exp(-(s * ev[i] + o)))
        shown = conf >= f
        kept += int((shown & right[i]).sum())
        wrong += int((shown & ~right[i]).sum())
        if q in NOTHING:
            answered_nothing += int(not shown.any())
        top = names[int(np.argmax(cos[i]))]
        per_query.append((q, int(right[i].sum()), int((shown & right[i]).sum()), int((shown & ~right[i]).sum()),
                          top))
    labelled = [i for i, q in enumerate(queries) if q not in NOTHING]
    total_right = int(right.sum())
    total_wrong = int((~right).sum())
    # without a floor: the 10 nearest (of the 23 photos), today's default
    top10 = np.argsort(-cos, axis=1)[:, :10]
    base_kept = sum(int(right[i, top10[i]].sum()) for i in range(len(queries)))
    base_wrong = sum(int((~right[i, top10[i]]).sum()) for i in range(len(queries)))
    first_right = sum(int(right[i, int(np.argmax(cos[i]))]) for i in labelled)

    lines = [
        f"## Relevance floor (`benchmarks/relevance_floor.py`, model `{args.model}`)",
        "",
        f"{len(queries)} queries ({len(labelled)} naming a photo, {len(NOTHING)} naming nothing shown) x "
        f"{len(names)} photos of scikit-image and scikit-learn: {total_right} right pairs, {total_wrong} wrong. "
        f"Fitted on all pairs: SLOPE {slope:.3f}, OFFSET {offset:.3f}, FLOOR {floor:.3f} (the constants in "
        "`src/polymodal/library/relevance.py`). The cut below is measured with each query held out of the fit "
        "that judges it.",
        "",
        "| | right answers shown | wrong answers shown | queries naming nothing that show nothing |",
        "| --- | --- | --- | --- |",
        f"| no floor, 10 nearest (before) | {base_kept}/{total_right} | {base_wrong}/{total_wrong} | "
        f"0/{len(NOTHING)} |",
        f"| floor, held-out fit | {kept}/{total_right} | {wrong}/{total_wrong} | "
        f"{answered_nothing}/{len(NOTHING)} |",
        "",
        f"The right photo ranks first for {first_right}/{len(labelled)} labelled queries (the floor does not "
        "change the order). Per query (right answers, of them shown, wrong shown, nearest photo):",
        "",
        "| query | right | shown | wrong shown | nearest |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {q} | {n} | {k} | {w} | {t} |" for q, n, k, w, t in per_query),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(HERE / "RESULTS.md", "relevance_floor", text, load_before=load)


if __name__ == "__main__":
    main()
