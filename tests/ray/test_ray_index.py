"""`--ray` against local indexing on a real two-node Ray cluster: same library, resumable, failures recorded."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ray_helpers import assert_same_library

from polymodal.errors import LibraryLockedError
from polymodal.library import Library
from polymodal.library.distributed import KnownIds, RayOptions, plan


@pytest.mark.slow
def test_cluster_has_two_nodes(ray_cluster):
    """The session's cluster (its start-up is paid here): two live nodes of one CPU each."""
    import ray

    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 2
    assert ray.cluster_resources()["CPU"] == 2


def test_local_baseline(local_library, photo_set):
    """The local build every Ray build is compared with (its indexing is paid here)."""
    n_files = sum(1 for p in photo_set.rglob("*") if p.is_file())
    assert local_library.store.count_items() == n_files - 2  # one exact copy, one broken file
    assert [f.reason for f in local_library.failures()] == ["not a recognised image format"]


@pytest.mark.slow
def test_ray_build_equals_local(tmp_path, ray_cluster, photo_set, local_library):
    seen: list[tuple[int, int]] = []
    lib = Library.open(tmp_path / "lib", model="lite")
    report = lib.add([photo_set], ray="auto", progress=lambda d, n: seen.append((d, n)))

    n_files = sum(1 for p in photo_set.rglob("*") if p.is_file())
    assert (report.added, report.duplicates, report.failed) == (n_files - 2, 1, 1)
    assert [f.reason for f in report.failures] == ["not a recognised image format"]
    assert seen[0] == (0, n_files) and seen[-1] == (n_files, n_files)  # progress per committed batch
    assert len(seen) == 1 + -(-n_files // 64)  # one report per commit of 64
    assert_same_library(local_library, lib)
    assert lib.failures() == local_library.failures()
    assert lib.status().last_job.state == "done"
    # Searches answer the same.
    a = [(h.id, round(h.score, 4)) for h in local_library.search(text="a cat", k=5, floor=False)]
    b = [(h.id, round(h.score, 4)) for h in lib.search(text="a cat", k=5, floor=False)]
    assert a == b
    # Ray Data left its metrics poller running in this process; its failed queries must not format
    # tracebacks from that thread (on CPython 3.11 that races with ast use here, e.g. an ONNX export).
    assert any(t.name == "data-usage-metrics-poller" for t in threading.enumerate())
    assert not logging.getLogger("ray.data._internal.usage.util").isEnabledFor(logging.DEBUG)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, ray_cluster, photo_set) -> dict:
    """A Ray run stopped (as by Ctrl-C) after its first commit; a second writer tried while it ran."""
    path = tmp_path_factory.mktemp("interrupted") / "lib"
    lib = Library.open(path, model="lite")
    refused: list[BaseException] = []

    def stop_after_one_batch(done: int, total: int) -> None:
        if done == 0:
            try:
                Library.open(path).add([photo_set])
            except LibraryLockedError as exc:
                refused.append(exc)
        if done >= 64:
            raise KeyboardInterrupt  # between two commits

    try:
        lib.add([photo_set], ray="auto", progress=stop_after_one_batch)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    return {"lib": lib, "refused": refused}


@pytest.mark.slow
def test_ray_interrupted_run_keeps_its_commits_and_its_lock(interrupted, local_library):
    lib = interrupted["lib"]
    # The driver held the writer lock through the cluster run: the second writer was refused.
    assert len(interrupted["refused"]) == 1
    assert lib.status().last_job.state == "interrupted"
    assert 60 <= lib.store.count_items() < local_library.store.count_items()


@pytest.mark.slow
def test_ray_resumes_and_skips_known_content(tmp_path, interrupted, photo_set, local_library):
    lib = interrupted["lib"]
    kept = lib.store.count_items()
    # Known content under a new name is recorded as a duplicate: hashed, not decoded or embedded again.
    extra = tmp_path / "extra"
    extra.mkdir()
    first_kept = sorted(photo_set.rglob("*.png"))[0]
    shutil.copy(first_kept, extra / "again.png")
    report = lib.add([photo_set, extra], ray="auto")
    n_files = sum(1 for p in photo_set.rglob("*") if p.is_file())
    # The committed batch is not read again: 63 files skipped, and a/broken.jpg (first in scan order)
    # reported from its recorded failure, not retried.
    assert (report.skipped, report.failed) == (63, 1), report
    assert report.added == local_library.store.count_items() - kept
    assert report.added + report.duplicates + report.failed + report.skipped == n_files + 1
    again = lib.get(extra / "again.png")
    assert again is not None and again.id == local_library.get(first_kept).id
    lib.remove([extra])
    assert_same_library(local_library, lib)


# A new process imports Ray and loads the model twice (driver and actor): on a shared, loaded CPU that alone
# can pass a minute, hence the longer limit (about 25 s at load 3, 90 s at load 20 here).
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cli_index_ray_address(tmp_path, ray_cluster, photos, local_library):
    """`polymodal index DIR --ray ADDRESS` in a new process joins the running cluster as a second driver."""
    from ray_helpers import make_photos

    src = tmp_path / "few"
    make_photos(src, list(photos.values())[:4], 12, seed=7)
    env = {**os.environ, "POLYMODAL_MODEL": "lite"}
    out = subprocess.run([sys.executable, "-m", "polymodal", "index", str(src), "--ray", ray_cluster.address,
                          "--library", str(tmp_path / "lib"), "--json"], capture_output=True, text=True, env=env,
                         timeout=110)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert (report["added"], report["duplicates"], report["failed"]) == (12, 1, 1)
    local = Library.open(tmp_path / "local", model=local_library.encoder())
    local.add([src])
    assert_same_library(local, Library.open(tmp_path / "lib"))


def test_cli_refuses_an_unreachable_cluster(tmp_path):
    env = {**os.environ, "POLYMODAL_MODEL": "lite", "RAY_ADDRESS": ""}
    (tmp_path / "src").mkdir()
    Path(tmp_path / "src" / "x.png").write_bytes(b"")
    out = subprocess.run([sys.executable, "-m", "polymodal", "index", str(tmp_path / "src"), "--ray", "127.0.0.1:9",
                          "--library", str(tmp_path / "lib")], capture_output=True, text=True, env=env, timeout=110)
    assert out.returncode != 0
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in out.stderr, out.stderr[-2000:]


def test_plan_sizes_the_pool_to_the_cluster():
    assert plan({"CPU": 64.0, "GPU": 8.0}, RayOptions()).actors == 8
    gpu = plan({"CPU": 64.0, "GPU": 8.0}, RayOptions())
    assert (gpu.gpus_per_actor, gpu.device) == (1.0, "cuda")
    cpu = plan({"CPU": 32.0}, RayOptions())
    assert (cpu.actors, cpu.gpus_per_actor, cpu.device) == (8, 0.0, "cpu")
    assert plan({"CPU": 2.0}, RayOptions()).actors == 1
    assert plan({"CPU": 64.0, "GPU": 8.0}, RayOptions(device="cpu")).device == "cpu"
    with pytest.raises(Exception, match="no GPU"):
        plan({"CPU": 4.0}, RayOptions(device="cuda"))


def test_known_ids_answer_membership_like_a_set():
    ids = [f"{i * 7919:016x}" for i in range(1000)]
    known = KnownIds(ids)
    assert len(known) == 1000
    assert all(i in known for i in ids)
    assert f"{3:016x}" not in known and f"{2**64 - 1:016x}" not in known
