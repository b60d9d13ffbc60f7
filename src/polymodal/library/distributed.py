"""Indexing on a Ray cluster (issue #10): files read and decoded in Ray tasks, embedded in an actor pool.

Only the per-file work moves to the cluster; what to index and every commit stay in this process, which holds
the library's writer lock. The driver scans the sources and compares them with the library exactly as the
local indexer does (``ingest.Indexer.run``), then, instead of its threads, a Ray Data pipeline prepares the
files to index:

1. tasks run the local indexer's own ``Indexer._prepare`` on each file (read from disk or a bucket, hash,
   skip content the library holds, decode, EXIF header, thumbnail), with a stand-in encoder that decodes
   at the model's size and hands on the RGB pixels; a file that fails records its reason, as locally;
2. an actor pool, one model load per actor (one per GPU when the cluster has them), turns the pixels into
   the model's input and embeds them with ``Indexer._embed_prepared``, the local code again;
3. the driver receives the results in scan order and commits them batch by batch with the local commit code.

Ids, paths, metadata and thumbnails are therefore made by the same functions as in local mode, and a run
killed at any point leaves committed batches that the next run skips. Embeddings equal local ones to float
rounding (the batches fed to the model differ).
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from polymodal.errors import InputError, LibraryError, MissingDependencyError
from polymodal.library.ingest import Indexer, ProgressCallback, _Known, _Prepared, item_id
from polymodal.library.scan import FoundFile, image_extensions
from polymodal.library.store import Store
from polymodal.models.base import Encoder

#: environment passed on to the cluster's workers: polymodal's settings, the model hub's offline switch and
#: object-storage credentials, so a task reads a bucket with the driver's credentials
_FORWARDED_ENV = ("POLYMODAL_", "HF_", "AWS_", "GOOGLE_APPLICATION_CREDENTIALS", "TRANSFORMERS_")
#: files per decode task: small enough to spread 64 files over several cores
_DECODE_BATCH = 16
#: bytes a decode task reserves: its worker with polymodal imported (Ray Data measured ~250 MB at 1 MP
#: photos) plus a 24-megapixel photo decoded
_DECODE_MEMORY = 512 * 2**20


@dataclass(frozen=True)
class RayOptions:
    address: str = "auto"  # "auto": a running cluster (`ray start`, RAY_ADDRESS), else a local one; or HOST:PORT
    embed_actors: int | None = None  # actors in the embedding pool; default from the cluster (see plan)
    device: str | None = None  # the actors' device; default cuda when the cluster has GPUs, else cpu


@dataclass(frozen=True)
class Plan:
    """How the embedding pool is laid out on the cluster."""

    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    device: str


def plan(resources: dict[str, float], options: RayOptions) -> Plan:
    """One actor per GPU; without GPUs one per four CPUs, leaving the other CPUs to the decode tasks.

    Decoding a 12 MP photo costs about as much CPU as embedding it with a small model (34.6 against 43.4 per
    CPU-second for lite; benchmarks/RESULTS.md, ray section), so on CPU-only clusters the cores are split
    between the two stages rather than given to the actors.
    """
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    if (gpus and options.device in (None, "auto")) or (options.device or "").startswith("cuda"):
        if not gpus:
            raise InputError(f"--device {options.device} asked for, but the Ray cluster has no GPU")
        return Plan(options.embed_actors or gpus, 1.0, 1.0, options.device or "cuda")
    if options.device not in (None, "auto", "cpu"):
        raise InputError(f"device {options.device!r} cannot be used on a Ray cluster; use cpu or cuda")
    return Plan(options.embed_actors or max(1, cpus // 4), 1.0, 0.0, "cpu")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "--ray (pip install 'polymodal[ray]')") from None
    # Ray Data starts a daemon thread in this process that polls cluster metrics every 10 s for as long as the
    # process lives, and logs each failed query (every one, without Prometheus or after the job) with its
    # traceback at DEBUG, the level Ray Data's own file log records. Formatting a traceback parses source
    # with ``ast``, whose recursion-depth state is shared by all threads on CPython 3.11: a parse in that
    # thread while this one parses (the ONNX export does) fails one of them with "AST constructor recursion
    # depth mismatch" (python/cpython#106905). Those tracebacks say nothing a user needs.
    logging.getLogger("ray.data._internal.usage").setLevel(logging.INFO)
    return ray


def connect(address: str) -> Any:
    """The ``ray`` module, connected: to the cluster already joined by this process, to ``address``, or for
    "auto" to a running cluster if there is one and else to a new local one.
    """
    ray = _ray()
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": "WARNING"}
    try:
        with warnings.catch_warnings():
            # Starting a local cluster forks and at once execs Ray's processes; lancedb's warning about forking
            # after it started its runtime concerns children that keep running Python, not these.
            warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
            if address != "auto":
                _check_reachable(address)
                ray.init(address=address, **kwargs)
            else:
                try:
                    ray.init(address="auto", **kwargs)
                except ConnectionError:
                    ray.init(include_dashboard=False, **kwargs)  # no cluster running: this machine is the cluster
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds on a head node that does not answer (ray.init retries a dead address for minutes)."""
    import socket

    if "://" in address:
        return  # ray:// (Ray Client) and other schemes: left to Ray
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray {address}: give auto, or the head node as HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}; is `ray start --head` "
                         "running there?") from None


class KnownIds:
    """The item ids a library holds, as a sorted array of 64-bit integers (8 bytes per item, not ~80 for a
    Python string), shipped once to every decode task so known content is not decoded again.
    """

    def __init__(self, ids: Any) -> None:
        self._ids = np.sort(np.fromiter((int(i, 16) for i in ids), dtype=np.uint64))

    def __contains__(self, iid: object) -> bool:
        if not isinstance(iid, str):
            return False
        key = np.uint64(int(iid, 16))
        n = int(np.searchsorted(self._ids, key))
        return n < len(self._ids) and self._ids[n] == key

    def __len__(self) -> int:
        return len(self._ids)


class _DecodeOnly:
    """Stands in for the encoder in a decode task: decodes exactly as ``Encoder.load_image`` does for the
    model (same reduced JPEG size), and hands on the RGB pixels for the actor to preprocess.
    """

    def __init__(self, input_size: int | None) -> None:
        self.input_size = input_size

    def load_image(self, data: bytes) -> Any:
        from polymodal.media.images import load_image

        return load_image(data, min_side=2 * self.input_size if self.input_size else None)

    def preprocess_image(self, image: Any) -> Any:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


_KNOWN_CACHE: dict[str, KnownIds] = {}


def _decode_batch(batch: dict[str, Any], known: Any, input_size: int | None) -> dict[str, Any]:
    """Ray task: the local indexer's ``_prepare`` on each file, results pickled (one binary column)."""
    ray = _ray()
    key = known.hex() if hasattr(known, "hex") else str(id(known))
    ids = _KNOWN_CACHE.get(key)
    if ids is None:
        ids = ray.get(known) if isinstance(known, ray.ObjectRef) else known
        _KNOWN_CACHE.clear()  # one job's ids at a time per worker process
        _KNOWN_CACHE[key] = ids
    indexer = Indexer(cast(Store, None), cast(Callable[[], Encoder], lambda: _DecodeOnly(input_size)))
    indexer.item_paths = cast(dict[str, list[str]], ids)  # _prepare only asks `iid in item_paths`
    images = image_extensions()
    out = []
    for path, raw, size, mtime_ns in zip(batch["path"], batch["raw"], batch["size"], batch["mtime_ns"]):
        f = FoundFile(str(path), bytes(raw), int(size), int(mtime_ns))
        if os.path.splitext(f.path)[1].lower() not in images:
            out.append(pickle.dumps(_Prepared(f)))  # video, audio: left untouched for the driver (_settle)
            continue
        out.append(pickle.dumps(indexer._prepare(f, {})))
    return {"prepared": np.array(out, dtype=object)}


class _Embedder:
    """Ray actor: loads the model once, then preprocesses and embeds the decoded files it is given."""

    def __init__(self, model: str, device: str, batch_size: int) -> None:
        from polymodal.models import load_model

        self.encoder = load_model(model, device=device, batch_size=batch_size)
        self.indexer = Indexer(cast(Store, None), lambda: self.encoder)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from PIL import Image

        prepared: list[_Prepared] = [pickle.loads(b) for b in batch["prepared"]]
        for p in prepared:
            if p.pixels is None:
                continue
            try:
                p.pixels = self.encoder.preprocess_image(Image.fromarray(p.pixels))
            except Exception as exc:  # noqa: BLE001 - as in _prepare: recorded as this file's failure
                p.error, p.pixels = f"cannot process it: {type(exc).__name__}: {exc}", None
        self.indexer._embed_prepared(prepared)
        for p in prepared:
            p.pixels = None  # the driver needs the vector, not the model input
        return {"prepared": np.array([pickle.dumps(p) for p in prepared], dtype=object)}


def _worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV)}


class RayIndexer(Indexer):
    """``Indexer`` whose files are prepared and embedded on a Ray cluster; see the module docstring."""

    def __init__(self, store: Store, encoder: Callable[[], Encoder], *, model: str, options: RayOptions,
                 batch_size: int, progress: ProgressCallback | None = None) -> None:
        super().__init__(store, encoder, batch_size=batch_size, progress=progress)
        self.model = model
        self.options = options
        self.plan: Plan | None = None

    def _prepared_batches(self, todo: list[FoundFile], known: dict[str, _Known]) -> Iterator[list[_Prepared]]:
        if not todo:
            return
        ray = connect(self.options.address)
        from ray import data as ray_data

        self.plan = plan(ray.cluster_resources(), self.options)
        input_size = self.encoder.input_size  # the driver's copy of the model: also checks it loads
        ctx = ray_data.DataContext.get_current()
        saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
        # Scan order, as in local mode: the first path seen of a duplicate gives its item's mtime.
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False  # the library reports progress through its callback only
        env = {"env_vars": _worker_env()}
        try:
            rows = [{"path": f.path, "raw": f.raw, "size": f.size, "mtime_ns": f.mtime_ns} for f in todo]
            ds: Any = ray_data.from_items(rows, override_num_blocks=max(1, len(rows) // _DECODE_BATCH))
            # A decode task asks for the memory of decoding a large photo; its resources differing from the
            # actors' also keeps Ray Data from fusing the two stages into the actors: decoding stays spread
            # over every CPU of the cluster, the actors (and their GPUs) only embed.
            ds = ds.map_batches(_decode_batch, batch_size=_DECODE_BATCH, num_cpus=1, memory=_DECODE_MEMORY,
                                runtime_env=env,
                                fn_kwargs={"known": ray.put(KnownIds(self.item_paths)), "input_size": input_size})
            ds = ds.map_batches(_Embedder, batch_size=self.batch_size,
                                compute=ray_data.ActorPoolStrategy(size=self.plan.actors),
                                num_cpus=self.plan.cpus_per_actor, num_gpus=self.plan.gpus_per_actor,
                                runtime_env=env,
                                fn_constructor_kwargs={"model": self.model, "device": self.plan.device,
                                                       "batch_size": self.batch_size})
            # No prefetching: with it, Ray Data 2.60 held every result until the whole dataset was done
            # (measured: the first commit came only at the end), which loses both progress and resumability.
            for batch in ds.iter_batches(batch_size=self.batch_size, batch_format="numpy", prefetch_batches=0):
                yield [self._settle(pickle.loads(b), known) for b in batch["prepared"]]
        except ray.exceptions.RayError as exc:
            raise LibraryError(f"the Ray job failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        finally:
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved

    def _settle(self, p: _Prepared, known: dict[str, _Known]) -> _Prepared:
        """Prepared here, with the driver's model: a file the cluster left untouched (video and audio, whose
        analysis is not distributed), or one it skipped as known content whose item an earlier batch of this
        run removed (its only path changed; rare).
        """
        if p.error is None and p.vector is None and (not p.digest or item_id(p.digest) not in self.item_paths):
            return self._prepare(p.file, known)
        return p
