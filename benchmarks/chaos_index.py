"""Crash chaos for indexing: SIGKILL a real ``polymodal index`` (then ``reindex``, then an ANN index build) at
random points, restart it each time, and check the library after every kill and at the end.

After each kill the library must open without repair and ``check`` must find nothing broken: tables read,
every ``files`` row points to an item that lists it, every item has a unit vector of the model's width, and
at most one batch of paths is still unrecorded (the batch whose ``files`` commit the kill cut off). At the
end: every file is in the library exactly once, failures are recorded with their reason, and the embeddings
equal those of a clean, never-killed run with the same model.

    python benchmarks/chaos_index.py                 # 20 index kills, 5 reindex kills, 5 ANN-build kills
    python benchmarks/chaos_index.py --kills 40 --files 1200 --json results.json

The short variant in tests/hardening/test_hardening_chaos.py calls ``run_chaos`` with a few kills.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 8  # small batches: many commits, so kills land between, during and after them
#: the ANN build is started through the Python API with a lowered ``Library.ann_threshold``, the one knob
#: there is; the subprocess prints a marker just before the build so the kill can be aimed into it
_ANN_CHILD = """
import sys
from polymodal.library import Library
lib = Library.open(sys.argv[1])
lib.ann_threshold = 1
real = lib.store.build_ann_index
def build(**options):
    print("BUILD", flush=True)
    real(**options)
    print("BUILT", flush=True)
lib.store.build_ann_index = build
lib.add([sys.argv[2]])
"""


@dataclass
class ChaosResult:
    files: int = 0  # files in the collection (good + broken)
    broken: int = 0
    index_kills: int = 0  # SIGKILLs that landed while ``polymodal index`` ran
    index_restarts: int = 0
    reindex_kills: int = 0
    ann_kills: int = 0
    checks_after_kills: int = 0  # check_library runs after a kill, all without an error
    max_unrecorded: int = 0  # most item paths without a files row seen after a kill (<= one batch)
    max_vector_diff: float = 0.0  # largest |chaos - clean| over all embedding values
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def make_collection(folder: Path, n: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """``n`` files: smooth random PNGs and JPEGs, a few exact copies (shared items) and a few broken files."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    good: list[Path] = []
    broken: list[Path] = []
    n_broken = max(2, n // 50)
    n_copies = max(2, n // 25)
    for i in range(n - n_broken - n_copies):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((64, 64), Image.Resampling.BILINEAR)
        sub = folder / f"d{i % 7}"
        sub.mkdir(exist_ok=True)
        p = sub / (f"img_{i:05d}.png" if i % 3 else f"img_{i:05d}.jpg")
        img.save(p)
        good.append(p)
    for i in range(n_copies):
        p = folder / f"copy_{i:03d}.png" if good[i].suffix == ".png" else folder / f"copy_{i:03d}.jpg"
        shutil.copy(good[i], p)
        good.append(p)
    for i in range(n_broken):
        p = folder / f"broken_{i:03d}.jpg"
        p.write_bytes(b"" if i % 2 == 0 else b"\xff\xd8\xff\xe0 not really a jpeg " + bytes(rng.integers(0, 256, 200,
                                                                                                        np.uint8)))
        broken.append(p)
    return good, broken


def _env(workdir: Path, cache: Path | None) -> dict[str, str]:
    """The indexers' environment: offline, model lite, no config file; the cache (where the lite model's ONNX
    export lives, minutes to make on a loaded CPU) is the user's unless ``cache`` is given."""
    env = {**os.environ, "POLYMODAL_MODEL": "lite", "HF_HUB_OFFLINE": "1",
           "POLYMODAL_CONFIG": str(workdir / "no-config.toml")}
    if cache is not None:
        env["POLYMODAL_CACHE_DIR"] = str(cache)
    return env


def _index_cmd(folder: Path, lib: Path) -> list[str]:
    return [sys.executable, "-m", "polymodal", "index", str(folder), "--library", str(lib), "--model", "lite",
            "--batch-size", str(BATCH)]


def _run(cmd: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def _count_files(lib: Path) -> int:
    """Rows in ``files``, cheaply, or -1 before the table exists."""
    import lancedb

    if not (lib / "db" / "files.lance").is_dir():
        return -1  # (connecting would create the db folder, and with it a library folder with no library.json)
    try:
        db = lancedb.connect(str(lib / "db"))
        return int(db.open_table("files").count_rows())
    except Exception:  # noqa: BLE001 - not created yet, or mid-creation
        return -1


def _kill(proc: subprocess.Popen) -> bool:
    """SIGKILL; True when it landed on a running process."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return proc.returncode == -signal.SIGKILL


@contextmanager
def _running(cmd: list[str], env: dict[str, str], **popen: Any) -> Iterator[subprocess.Popen]:
    """A child for the block to aim a kill at; dead when the block ends, however it ends, so that no stray
    indexer holds the library into the next round or outlives the run."""
    proc = subprocess.Popen(cmd, env=env, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _check_after_kill(lib_dir: Path, result: ChaosResult, thumbnails: bool) -> None:
    """Opens without repair; nothing broken; at most one batch of paths unrecorded; a search answers."""
    from polymodal.errors import NotALibraryError
    from polymodal.library import Library
    from polymodal.library.check import PENDING, check_library

    try:
        lib = Library.open(lib_dir, create=False)
    except NotALibraryError:
        if (lib_dir / "library.json").exists():
            raise
        result.checks_after_kills += 1  # killed before the library was created: nothing exists to check
        return
    if lib.store.items() is None and lib.store.files().count_rows() == 0:
        # killed before the first commit: opening without repair (above) is all there is to check
        result.checks_after_kills += 1
        return
    report = check_library(lib.store, thumbnails=thumbnails)
    if not report.ok:
        raise AssertionError(f"check failed after a kill: {report.errors[:5]}")
    unrecorded = sum(1 for f in report.findings if f.severity == PENDING)
    if unrecorded > BATCH:
        raise AssertionError(f"{unrecorded} unrecorded paths after a kill: more than one batch ({BATCH})")
    result.max_unrecorded = max(result.max_unrecorded, unrecorded)
    ids = Counter(lib.store.scan(lib.store.items(), ["id"]).column("id").to_pylist()) if lib.store.items() else {}
    if any(n > 1 for n in ids.values()):
        raise AssertionError("an item is stored twice")
    result.checks_after_kills += 1


def _final_state(lib_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, str | None], dict[str, str]]:
    """(vectors by id, item id or None by path, failure reason by path) of a library."""
    from polymodal.library import Library

    lib = Library.open(lib_dir, create=False)
    ids, vecs = lib.store.vectors()
    files = lib.store.scan(lib.store.files(), ["path", "item_id", "error"]).to_pylist()
    return (dict(zip(ids, vecs)), {r["path"]: r["item_id"] for r in files},
            {r["path"]: r["error"] for r in files if r["error"]})


def _verify_final(lib_dir: Path, clean_dir: Path, good: list[Path], broken: list[Path],
                  result: ChaosResult) -> None:
    from polymodal.library import Library
    from polymodal.library.check import check_library

    lib = Library.open(lib_dir, create=False)
    report = check_library(lib.store, thumbnails=True, verify_files=True)
    if report.findings:
        raise AssertionError(f"the finished library is not clean: {report.findings[:5]}")
    vecs, paths, failures = _final_state(lib_dir)
    clean_vecs, clean_paths, clean_failures = _final_state(clean_dir)
    if paths != clean_paths:
        diff = set(paths.items()) ^ set(clean_paths.items())
        raise AssertionError(f"files differ from the clean run: {sorted(diff)[:5]}")
    if set(paths) != {str(p) for p in good + broken}:
        raise AssertionError("the library does not hold exactly the collection's files")
    if set(failures) != {str(p) for p in broken} or failures != clean_failures:
        raise AssertionError(f"failures differ: {failures} vs {clean_failures}")
    items = lib.store.scan(lib.store.items(), ["id", "paths"]).to_pylist()
    listed = Counter(p for r in items for p in r["paths"])
    if set(listed) != {str(p) for p in good} or any(n != 1 for n in listed.values()):
        raise AssertionError("a good file is missing from the items, or listed twice")
    if set(vecs) != set(clean_vecs):
        raise AssertionError("item ids differ from the clean run")
    diff = max(float(np.abs(vecs[i] - clean_vecs[i]).max()) for i in vecs)
    result.max_vector_diff = max(result.max_vector_diff, diff)
    if diff > 1e-4:
        raise AssertionError(f"embeddings differ from the clean run by up to {diff}")
    if not lib.search("a colourful picture", k=3, floor=False):  # noise images: nothing stands out, all are there
        raise AssertionError("a search found nothing")


def chaos_index(folder: Path, lib_dir: Path, env: dict[str, str], kills: int, rng: random.Random,
                result: ChaosResult, thumbnails: bool, log: Any) -> None:
    """Kill ``polymodal index`` ``kills`` times at random points, then let it finish."""
    while result.index_kills < kills:
        before = _count_files(lib_dir)
        with _running(_index_cmd(folder, lib_dir), env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
            result.index_restarts += 1
            if rng.random() < 0.2:
                time.sleep(rng.uniform(0.0, 3.0))  # sometimes during start-up: imports, model, job row
            else:
                # Otherwise once this run has committed something, then at a random instant after.
                deadline = time.monotonic() + 300
                while _count_files(lib_dir) <= before and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 1.0))
            landed = _kill(proc)
        if not landed:
            if proc.returncode != 0:
                raise RuntimeError(f"polymodal index failed: {proc.stderr.read().decode()[-2000:]}")  # type: ignore
            result.notes.append(f"the indexer finished before kill {result.index_kills + 1}")
            break
        result.index_kills += 1
        log(f"index kill {result.index_kills}: {max(_count_files(lib_dir), 0)} files rows")
        _check_after_kill(lib_dir, result, thumbnails)
    _run(_index_cmd(folder, lib_dir), env)


def _tables(lib_dir: Path) -> set[str]:
    import lancedb

    res = lancedb.connect(str(lib_dir / "db")).list_tables()
    return set(getattr(res, "tables", res))


def chaos_reindex(lib_dir: Path, env: dict[str, str], kills: int, rng: random.Random, result: ChaosResult,
                  thumbnails: bool, log: Any) -> None:
    """Kill ``polymodal reindex`` while it fills its new table, then let one finish."""

    cmd = [sys.executable, "-m", "polymodal", "reindex", "--library", str(lib_dir), "--batch-size", str(BATCH)]
    for _ in range(kills):
        known = _tables(lib_dir)  # the library exists by now
        with _running(cmd, env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
            deadline = time.monotonic() + 300
            while proc.poll() is None and time.monotonic() < deadline:
                if _tables(lib_dir) - known:
                    break  # the new table exists: the re-embedding has begun
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.0))
            landed = _kill(proc)
        if landed:
            result.reindex_kills += 1
            log(f"reindex kill {result.reindex_kills}")
        _check_after_kill(lib_dir, result, thumbnails)
    _run(cmd, env)


def chaos_ann(folder: Path, lib_dir: Path, env: dict[str, str], kills: int, rng: random.Random,
              result: ChaosResult, thumbnails: bool, log: Any) -> None:
    """Kill the ANN index build (threshold lowered to 1) at a random instant inside it, then let one finish.

    A first whole build measures how long one takes; each kill then lands a random fraction of that after
    the child says it is starting the build, and counts only if the child had not yet said it finished.
    Each round adds one new image to an extra folder, so the run has a change to maintain, and drops any
    index left by the round before, so every round builds again.
    """
    from PIL import Image

    from polymodal.library import Library
    from polymodal.library.check import check_library

    extra = folder.parent / "ann_extra"
    extra.mkdir(exist_ok=True)
    cmd = [sys.executable, "-c", _ANN_CHILD, str(lib_dir), str(extra)]
    build_time = 0.0
    rounds = 0
    while result.ann_kills < kills or rounds == 0:
        rounds += 1
        if rounds > 4 * kills + 2:
            result.notes.append(f"only {result.ann_kills} of {kills} ANN kills landed inside a build")
            break
        Image.new("RGB", (32, 32), (rounds * 37 % 256, rounds * 91 % 256, rounds * 13 % 256)).save(
            extra / f"extra_{rounds:03d}.png")
        lib = Library.open(lib_dir, create=False)
        table = lib.store.items_table()
        for idx in table.list_indices():
            table.drop_index(idx.name)
        with _running(cmd, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "BUILD":  # blocks until the build starts (or the child ends)
                raise RuntimeError(f"the ANN child never started its build: {proc.stderr.read()[-2000:]}")  # type: ignore
            if rounds == 1:
                started = time.monotonic()
                if proc.stdout.readline().strip() != "BUILT":
                    raise RuntimeError("the measuring ANN build failed")
                build_time = time.monotonic() - started
                proc.wait(timeout=300)
                continue
            time.sleep(rng.uniform(0.0, build_time))
            landed = _kill(proc)
            inside = landed and "BUILT" not in proc.stdout.read()
        if inside:
            result.ann_kills += 1
            log(f"ANN build kill {result.ann_kills}")
        _check_after_kill(lib_dir, result, thumbnails)
    result.notes.append(f"a whole ANN build took {build_time:.2f} s")
    # The last round, left to finish: a new image again, so it has a change to maintain.
    Image.new("RGB", (32, 32), (250, 10, 10)).save(extra / "extra_final.png")
    table = Library.open(lib_dir, create=False).store.items_table()
    for idx in table.list_indices():
        table.drop_index(idx.name)
    _run(cmd, env)
    lib = Library.open(lib_dir, create=False)
    if not lib.store.has_ann_index():
        raise AssertionError("no ANN index after the final build")
    for query in ("a colourful picture", "a red square"):
        ann = [h.id for h in lib.search(query, k=5, floor=False)]
        exact = [h.id for h in lib.search(query, k=5, exact=True, floor=False)]
        if ann[0] != exact[0]:
            raise AssertionError(f"ANN search disagrees with exact search on {query!r}")
    report = check_library(lib.store)
    if not report.ok:
        raise AssertionError(f"check failed after the ANN build: {report.errors[:5]}")


def run_chaos(workdir: Path, *, files: int = 400, kills: int = 20, reindex_kills: int = 5, ann_kills: int = 5,
              seed: int = 0, thumbnails: bool = True, cache: Path | None = None, log: Any = print,
              clean: Any = None) -> ChaosResult:
    """The whole chaos run; ``clean(folder, library_dir)`` may build the clean library (default: a
    ``polymodal index`` subprocess; a test passes one that reuses its loaded model)."""
    result = ChaosResult()
    started = time.monotonic()
    rng = random.Random(seed)
    folder = workdir / "collection"
    good, broken = make_collection(folder, files, seed)
    result.files, result.broken = len(good) + len(broken), len(broken)
    env = _env(workdir, cache)
    clean_dir, lib_dir = workdir / "clean", workdir / "chaos"
    log(f"clean run over {result.files} files")
    if clean is None:
        _run(_index_cmd(folder, clean_dir), env)
    else:
        clean(folder, clean_dir)
    chaos_index(folder, lib_dir, env, kills, rng, result, thumbnails, log)
    _verify_final(lib_dir, clean_dir, good, broken, result)
    log(f"index: {result.index_kills} kills survived; the library matches the clean run")
    if reindex_kills:
        chaos_reindex(lib_dir, env, reindex_kills, rng, result, thumbnails, log)
        _verify_final(lib_dir, clean_dir, good, broken, result)
        log(f"reindex: {result.reindex_kills} kills survived; the library matches the clean run")
    if ann_kills:
        chaos_ann(folder, lib_dir, env, ann_kills, rng, result, thumbnails, log)
        log(f"ANN build: {result.ann_kills} kills survived")
    result.seconds = round(time.monotonic() - started, 1)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--reindex-kills", type=int, default=5)
    ap.add_argument("--ann-kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory)")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args()
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="polymodal-chaos-")
        args.workdir = Path(tmp)
    try:
        result = run_chaos(args.workdir, files=args.files, kills=args.kills, reindex_kills=args.reindex_kills,
                           ann_kills=args.ann_kills, seed=args.seed,
                           log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(asdict(result), indent=2))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
