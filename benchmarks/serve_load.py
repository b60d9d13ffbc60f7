"""Open-loop load on `polymodal serve`: text searches at fixed arrival rates against a 100k-item library.

Open loop (the request schedule does not wait for answers) and latency measured from each request's
*scheduled* time, so a server that falls behind shows it in p99 instead of hiding it by slowing the load
(coordinated omission). The library holds synthetic clustered vectors (benchmarks/library_store.py's) under
the offline model's name and dimension, so every query is a real text embedding with lite followed by a
real ANN search over 100k rows; only the stored vectors are synthetic. The server runs as its own process
(`polymodal serve`), the load generator here, both on loopback. Timing starts once `/api/version` answers:
`/health` answers before the model has loaded (server/loading.py), `/api/version` waits for it and says what
each network runs on, which the section records.

Index jobs run in a child process at nice 10 (server/indexproc.py); the first design ran them in a thread of
the server, which no longer exists, so no figure for it is kept (git history of RESULTS.md has it).

    python benchmarks/serve_load.py --items 2000 --rates 5 --duration 3 --index-images 20   # quick check

    python benchmarks/serve_load.py --items 100000 --rates 5 10 20 40 80 --duration 60 --write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results_md import load_average, machine, write_section

QUERIES = [
    "a cat on a sofa", "sunset over the sea", "a red car", "mountains with snow", "a birthday cake", "a dog running",
    "people at a wedding", "a plate of pasta", "a city at night", "a child on a bicycle", "flowers in a garden",
    "a rocket launch", "a cup of coffee", "a beach with palm trees", "an old castle", "a horse in a field",
    "a bowl of fruit", "a train station", "fireworks", "a forest path in autumn", "a snowy street", "a boat",
    "a portrait of a woman", "a concert crowd", "a bridge over a river", "a waterfall", "a laptop on a desk",
]


def build_library(root: Path, n: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from library_store import fill

    from polymodal.library.schema import LibraryMeta, write_meta
    from polymodal.library.store import Store
    from polymodal.models import load_model

    enc = load_model("lite")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(max(8, n // 500), enc.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    root.mkdir(parents=True)
    meta = LibraryMeta(model=enc.name, backend=enc.info.backend, dim=enc.dim)
    write_meta(root, meta)
    store = Store(root, meta)
    fill(store, n, enc.dim, rng, centres)
    store.optimize()
    store.build_ann_index()


def start_server(library: Path, port: int, roots: list[Path]) -> tuple[subprocess.Popen, dict]:
    """The server, once its model has loaded, and its ``/api/version`` (model and runtimes)."""
    import httpx

    cmd = [sys.executable, "-m", "polymodal", "serve", "--library", str(library), "--port", str(port)]
    for r in roots:
        cmd += ["--root", str(r)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + 120
    while time.monotonic() < end and proc.poll() is None:
        try:
            # /health would answer while the model still loads; /api/version waits for the model
            r = httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=max(1.0, end - time.monotonic()))
            if r.status_code == 200:
                return proc, r.json()
            time.sleep(0.3)
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")


async def load(url: str, rate: float, duration: float, k: int = 10) -> dict:
    import httpx

    n = int(rate * duration)
    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        t0 = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = t0 + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                r = await client.get("/api/search", params={"q": QUERIES[i % len(QUERIES)], "k": k})
                ok = r.status_code == 200 and len(r.json()["hits"]) == k
            except httpx.HTTPError:
                ok = False
            if ok:
                lat.append((time.perf_counter() - scheduled) * 1000)
            else:
                errors += 1

        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    pct = (lambda p: float(np.percentile(lat, p))) if lat else (lambda p: float("nan"))
    return {"rate": rate, "sent": n, "ok": len(lat), "errors": errors, "throughput": len(lat) / wall,
            "p50": pct(50), "p95": pct(95), "p99": pct(99)}


def start_index_job(url: str, folder: Path) -> str:
    import httpx

    r = httpx.post(f"{url}/api/jobs", json={"paths": [str(folder)]}, timeout=30)
    r.raise_for_status()
    return r.json()["id"]


def job_state(url: str, job: str) -> dict:
    import httpx

    return httpx.get(f"{url}/api/jobs/{job}", timeout=30).json()


def table(rows: list[dict]) -> list[str]:
    out = ["| rate (req/s) | sent | errors | throughput (req/s) | p50 ms | p95 ms | p99 ms |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['rate']:g} | {r['sent']} | {r['errors']} | {r['throughput']:.1f} | {r['p50']:.1f} | "
                   f"{r['p95']:.1f} | {r['p99']:.1f} |")
    return out


def best(rows: list[dict]) -> float | None:
    good = [r["rate"] for r in rows if r["errors"] == 0 and r["p99"] <= 100]
    return max(good) if good else None


def _rate(value: float | None) -> str:
    return f"{value:g} req/s" if value is not None else "none of the rates tried"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--rates", type=float, nargs="+", default=[5, 10, 20, 40, 80])
    ap.add_argument("--idle-rates", type=float, nargs="+", help="rates for the idle server (default: --rates)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per rate")
    ap.add_argument("--index-images", type=int, default=3000, help="images the concurrent index job adds")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--write", action="store_true", help="update this benchmark's section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    load_before = load_average()

    work = Path(tempfile.mkdtemp(prefix="serve_load-"))
    try:
        t = time.perf_counter()
        build_library(work / "lib", args.items)
        build_s = time.perf_counter() - t
        sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "library"))
        from library_helpers import noise_images

        noise_images(work / "incoming", args.index_images, size=256)
        url = f"http://127.0.0.1:{args.port}"
        server, version = start_server(work / "lib", args.port, [work / "incoming"])
        ran_on = ", ".join(f"{k}: {v}" for k, v in version.get("runtimes", {}).items()) or "not reported"
        print(f"server ready: model {version.get('model')}, ran on {ran_on}", flush=True)
        try:
            asyncio.run(load(url, 5, 3))  # warm-up: first queries pay for lazy imports and caches
            idle = []
            for rate in args.idle_rates or args.rates:
                r = asyncio.run(load(url, rate, args.duration))
                idle.append(r)
                print(json.dumps(r), flush=True)
                if r["errors"] or r["p99"] > 1000:
                    break  # past saturation: higher rates only queue
            busy = []
            job = start_index_job(url, work / "incoming")
            for rate in args.rates:
                if job_state(url, job)["state"] not in ("queued", "running"):
                    break
                r = asyncio.run(load(url, rate, args.duration))
                r["index_progress"] = job_state(url, job)["done"]
                busy.append(r)
                print(json.dumps({**r, "during_index": True}), flush=True)
                if r["errors"] or r["p99"] > 1000:
                    break
            final = job_state(url, job)
            while final["state"] in ("queued", "running"):
                time.sleep(1)
                final = job_state(url, job)
        finally:
            server.terminate()
            server.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    idle_rates = f" --idle-rates {' '.join(f'{r:g}' for r in args.idle_rates)}" if args.idle_rates else ""
    lines = [
        "## HTTP server under open-loop load (benchmarks/serve_load.py)",
        "",
        f"Text searches (`GET /api/search?q=...&k=10`, lite text encoder + ANN search with exact re-ranking) against "
        f"a {args.items:,}-item library of synthetic clustered vectors, `polymodal serve` in its own process, the "
        f"load generator (httpx, asyncio) in another, both on loopback. Open loop: requests leave at a fixed rate "
        f"whatever the answers; latency counts from each request's scheduled time. {args.duration:g} s per rate. "
        f"Library build: {build_s:.0f} s. Model {version.get('model')}, ran on {ran_on} (the server's "
        f"`/api/version`; timing starts once it answers, i.e. once the model has loaded). Machine: {machine()}; "
        "load generator and server share these CPUs.",
        "",
        "Idle server:",
        "",
        *table(idle),
        "",
        f"**Highest rate with zero errors and p99 <= 100 ms: {_rate(best(idle))}.**",
        "",
        f"While an index job (a child process at nice 10) adds {args.index_images} new 256x256 images (final state: {final['state']}, "
        f"{final['done']}/{final['total']}):",
        "",
        *(table(busy) if busy else ["(the job finished before the first rate ended)"]),
        "",
        f"**During indexing: highest rate with zero errors and p99 <= 100 ms: {_rate(best(busy))}.**",
        "",
        f"Reproduce: `python benchmarks/serve_load.py --items {args.items} --rates "
        f"{' '.join(f'{r:g}' for r in args.rates)}{idle_rates} --duration {args.duration:g} --index-images {args.index_images} "
        "--write`",
    ]
    print("\n".join(lines))
    if args.write:
        write_section(Path(__file__).parent / "RESULTS.md", "serve_load", "\n".join(lines), load_before=load_before)


if __name__ == "__main__":
    main()
