"""Cold start: what a user waits for when a command starts as a new process (the OS file cache warm).

Each command runs ``--runs`` times as its own process (after one untimed warm-up run that fills polymodal's
caches, e.g. ONNX exports); the wall time's median and p90 and the process's peak RSS (``wait4``'s rusage,
per run) are reported for three variants side by side: this tree, this tree with ``--runtime torch``, and the
commit before the cold-start work (``--base``, a ``git worktree`` run with ``PYTHONPATH=BASE/src`` and a
cache dir of its own).

Libraries: ``lite`` over the ~28 photos shipped by scikit-image and scikit-learn, filled to 10,000 items with
random unit vectors through the library's own ``Store.commit_items`` (a real library on disk, exact search as
below ``ANN_THRESHOLD``); a ViT-B/32-sized CLIP with random weights (benchmarks/vitb32.py) over 6 photos.
Each variant builds its libraries with its own code.

    git worktree add /tmp/pm-base fc24b6a
    python benchmarks/cold_start.py --base /tmp/pm-base --write
    python benchmarks/cold_start.py --quick          # 2 runs each: a check that it works
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TARGETS = {"search-lite": 1.0, "embed-text": 1.0, "classify": 1.5, "help": 0.3, "search-vitb32": 1.5}
RSS_TARGETS_MB = {"index-60": 1024, "search-lite": 400}
SERVE_TARGET_S = 3.0


@dataclass
class Variant:
    name: str
    src: Path  # the tree whose src/ runs
    cache: Path  # its own POLYMODAL_CACHE_DIR
    extra: list[str] = field(default_factory=list)  # options added to model-loading commands

    def env(self, work: Path) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(self.src / "src"), "POLYMODAL_CACHE_DIR": str(self.cache),
               "POLYMODAL_CONFIG": str(work / "no-config.toml"), "HF_HUB_OFFLINE": "1",
               "POLYMODAL_MODEL": "lite"}  # no hub probe: the model a user configured, as in a real setup
        env.pop("POLYMODAL_LIBRARY", None)
        env.pop("POLYMODAL_SERVER", None)
        # an installed package has its bytecode compiled (pip does it, and a run writes it): without this a
        # shell that sets PYTHONDONTWRITEBYTECODE would time Python compiling polymodal's sources every run
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env


def photo_sources() -> list[Path]:
    import skimage
    import sklearn.datasets

    found = []
    for folder in (Path(skimage.__file__).parent / "data", Path(sklearn.datasets.__file__).parent / "images"):
        found += sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                        and p.stat().st_size > 20_000)
    return found


def run_once(cmd: list[str], env: dict[str, str], timeout: float = 600) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one run of ``cmd`` as a new process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's maximum
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    if proc.stderr:
        proc.stderr.close()
    return wall, usage.ru_maxrss / 1024, proc.returncode  # ru_maxrss is in kB on Linux


def polymodal(*args: str) -> list[str]:
    return [sys.executable, "-m", "polymodal", *args]


# -- building the libraries (each variant with its own code) ------------------------------------------------


def _fill(library: str, n: int) -> None:
    """Internal (``_fill LIB N``): add ``n`` items with random unit vectors to an indexed library, copying an
    indexed item's columns, through the same commit the indexer uses."""
    import numpy as np
    import pyarrow as pa

    from polymodal.library import Library
    from polymodal.library.schema import items_schema
    from polymodal.library.store import write_lock

    lib = Library.open(library, create=False)
    store = lib.store
    schema = items_schema(store.meta.dim)
    template = store.scan(store.items(), schema.names).slice(0, 1).to_pylist()[0]
    rng = np.random.default_rng(0)
    with write_lock(lib.root):
        for start in range(0, n, 5000):
            m = min(5000, n - start)
            vec = rng.normal(size=(m, store.meta.dim)).astype(np.float32)
            vec /= np.linalg.norm(vec, axis=1, keepdims=True)
            rows = []
            for i in range(m):
                key = f"{0xF000000000000000 + start + i:016x}"
                rows.append({**template, "id": key, "hash": key, "paths": [f"/synthetic/{key}.jpg"],
                             "vector": vec[i].tolist()})
            store.commit_items(None, (), pa.Table.from_pylist(rows, schema=schema))
        store.optimize()


def build_libraries(variant: Variant, work: Path, vitb32_dir: Path, photos: Path, few: Path) -> dict[str, Path]:
    env = variant.env(work)
    out = {"lite": work / f"{variant.name}-lite10k", "vitb32": work / f"{variant.name}-vitb32"}
    if not (out["lite"] / "library.json").exists():
        subprocess.run(polymodal("index", str(photos), "--library", str(out["lite"]), "--model", "lite",
                                 "--no-speech"), env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "_fill", str(out["lite"]), "10000"],
                       env=env, check=True)
    if not (out["vitb32"] / "library.json").exists():
        subprocess.run(polymodal("index", str(few), "--library", str(out["vitb32"]), "--model",
                                 f"hf:{vitb32_dir}", "--no-speech"), env=env, check=True, stdout=subprocess.DEVNULL)
    return out


# -- measuring ------------------------------------------------------------------------------------------------


def summary(walls: list[float], rss: list[float]) -> dict[str, float]:
    walls = sorted(walls)
    p90 = walls[min(len(walls) - 1, round(0.9 * (len(walls) - 1)))]
    return {"median": statistics.median(walls), "p90": p90, "rss_mb": max(rss), "runs": len(walls)}


def measure(cmd: list[str], env: dict[str, str], runs: int, setup: list[str] | None = None) -> dict[str, float]:
    """One untimed warm-up run, then ``runs`` timed ones (``setup`` removes what a run leaves behind)."""
    walls, rss = [], []
    for i in range(runs + 1):
        if setup:
            shutil.rmtree(setup[0], ignore_errors=True)
        wall, mb, _ = run_once(cmd, env)
        if i:
            walls.append(wall)
            rss.append(mb)
    return summary(walls, rss)


def time_to_health(variant: Variant, work: Path, library: Path, runs: int) -> dict[str, float]:
    import urllib.request

    env = variant.env(work)
    walls = []
    for i in range(runs + 1):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        start = time.perf_counter()
        cmd = polymodal("serve", "--library", str(library), "--port", str(port),
                        *(variant.extra if variant.name == "torch" else []))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None or time.perf_counter() - start > 120:
                        raise SystemExit(f"{' '.join(cmd)}: no /health") from None
                    time.sleep(0.02)
            if i:
                walls.append(time.perf_counter() - start)
        finally:
            proc.terminate()
            proc.wait(30)
    return summary(walls, [0.0])


def commands(libs: dict[str, Path], photo: Path, index_src: Path, scratch: Path) -> dict[str, tuple[list[str], bool]]:
    """name -> (argv, loads a model: takes the variant's model options)."""
    return {
        "help": (["--help"], False),
        "search-lite": (["search", "a cat", "--library", str(libs["lite"])], True),
        "embed-text": (["embed", "--text", "a cat"], True),
        "classify": (["classify", str(photo), "--labels", "cat,dog,car,cup of coffee,rocket"], True),
        "search-vitb32": (["search", "a cat", "--library", str(libs["vitb32"])], True),
        "index-60": (["index", str(index_src), "--library", str(scratch), "--model", "lite", "--no-speech"], True),
    }


def run_variant(variant: Variant, work: Path, runs: int, data: dict[str, Path], vitb32_dir: Path) -> dict:
    libs = build_libraries(variant, work, vitb32_dir, data["photos"], data["few"])
    env = variant.env(work)
    scratch = work / f"{variant.name}-index-scratch"
    results: dict[str, dict[str, float]] = {}
    for name, (argv, loads) in commands(libs, data["photo"], data["sixty"], scratch).items():
        n = max(2, runs // 3) if name == "index-60" else runs
        cmd = polymodal(*argv, *(variant.extra if loads else []))
        results[name] = measure(cmd, env, n, setup=[str(scratch)] if name == "index-60" else None)
        print(f"  {variant.name:6s} {name:14s} median {results[name]['median']:.2f} s  "
              f"p90 {results[name]['p90']:.2f} s  peak RSS {results[name]['rss_mb']:.0f} MB", file=sys.stderr)
    results["serve-health"] = time_to_health(variant, work, libs["lite"], max(2, runs // 2))
    print(f"  {variant.name:6s} serve /health  median {results['serve-health']['median']:.2f} s", file=sys.stderr)
    return results


def prepare_data(work: Path) -> tuple[dict[str, Path], Path]:
    from ray_index import photos_from

    photos = work / "photos"
    if not photos.exists():
        photos.mkdir(parents=True)
        for src in photo_sources():
            shutil.copy(src, photos / src.name)
    few = work / "few"
    if not few.exists():
        few.mkdir()
        for src in sorted(photos.iterdir())[:6]:
            shutil.copy(src, few / src.name)
    sixty = work / "sixty"
    if not sixty.exists():
        photos_from(photo_sources()[:8], sixty, 60, 1024)
    hf_dir = work / "models" / "vitb32-hf"
    if not (hf_dir / "model.safetensors").exists():
        # in a child: this process must stay small, as Linux counts the RSS a child is forked with in its peak
        code = f"import sys; sys.path.insert(0, {str(HERE)!r}); from vitb32 import build; build({str(work / 'models')!r})"
        subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chelsea = photos / "chelsea.png"
    return {"photos": photos, "few": few, "sixty": sixty, "photo": chelsea}, hf_dir


# -- the report -----------------------------------------------------------------------------------------------


def _cell(r: dict[str, float] | None, rss: bool = True) -> str:
    if r is None:
        return "-"
    text = f"{r['median']:.2f} / {r['p90']:.2f} s"
    return text + (f", {r['rss_mb']:.0f} MB" if rss and r["rss_mb"] else "")


def report(results: dict[str, dict], runs: int, base_commit: str | None) -> str:
    commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    variants = list(results)
    names = {"now": "this tree", "torch": "this tree, --runtime torch", "base": f"before ({base_commit})"}
    short = {"now": "this tree", "torch": "`--runtime torch`", "base": "the commit before"}
    skipped = [short[v] for v in ("now", "torch", "base") if v not in results]
    lines = [
        "## Cold start (`benchmarks/cold_start.py`)",
        "",
        f"Commit {commit}{' + uncommitted changes' if dirty else ''}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; load average {load}. "
        f"Each command as a new process, {runs} runs after one warm-up (index: fewer), OS cache warm; "
        "median / p90 wall time and the largest peak RSS of the runs. POLYMODAL_MODEL=lite and HF_HUB_OFFLINE=1 "
        "(no hub probe). Libraries: lite over the scikit-image/-learn photos filled to 10,000 items with random "
        "unit vectors; a random-weight ViT-B/32 CLIP over 6 photos."
        + (f" Not run this time (`--only`): {' and '.join(skipped)}; the last run with them is in this file's git "
           "history." if skipped else ""),
        "",
        "| command | target | " + " | ".join(names[v] for v in variants) + " |",
        "| --- | --- | " + " | ".join("---" for _ in variants) + " |",
    ]
    labels = {"help": "`polymodal --help`", "search-lite": '`search "a cat"` (lite, 10k items)',
              "embed-text": '`embed --text "a cat"`', "classify": "`classify` one photo, 5 labels",
              "search-vitb32": '`search "a cat"` (ViT-B/32)', "index-60": "`index --model lite` 60 photos",
              "serve-health": "`serve`: time to /health"}
    for key, label in labels.items():
        target = []
        if key in TARGETS:
            target.append(f"≤ {TARGETS[key]:g} s")
        if key in RSS_TARGETS_MB:
            target.append(f"≤ {RSS_TARGETS_MB[key]} MB")
        if key == "serve-health":
            target.append(f"≤ {SERVE_TARGET_S:g} s")
        cells = [_cell(results[v].get(key), rss=key != "serve-health") for v in variants]
        lines.append(f"| {label} | {', '.join(target) or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_fill":
        _fill(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="timed runs per command (default 10)")
    ap.add_argument("--quick", action="store_true", help="2 runs each: a check that it works")
    ap.add_argument("--base", type=Path, help="a checkout of the commit before (git worktree add DIR fc24b6a)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/polymodal-cold-start"), help="data and libraries")
    ap.add_argument("--only", nargs="+", choices=["now", "torch", "base"], help="variants to run")
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    runs = 2 if args.quick else args.runs
    args.work.mkdir(parents=True, exist_ok=True)
    data, vitb32_dir = prepare_data(args.work)
    root = HERE.parent
    variants = [Variant("now", root, args.work / "cache-now"),
                Variant("torch", root, args.work / "cache-now", ["--runtime", "torch"])]
    base_commit = None
    if args.base is not None:
        variants.append(Variant("base", args.base.resolve(), args.work / "cache-base"))
        base_commit = subprocess.run(["git", "-C", str(args.base), "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip()
    if args.only:
        variants = [v for v in variants if v.name in args.only]
    results = {}
    for v in variants:
        print(f"{v.name}: {v.src}", file=sys.stderr)
        results[v.name] = run_variant(v, args.work, runs, data, vitb32_dir)
    text = report(results, runs, base_commit)
    print(text)
    if args.write:
        from results_md import write_section

        write_section(HERE / "RESULTS.md", "cold_start", text)


if __name__ == "__main__":
    main()
