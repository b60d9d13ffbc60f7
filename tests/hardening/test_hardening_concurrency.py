"""Concurrent use of one library: a second writer (CLI or server job) is refused with a clear message and
never corrupts a table; searches, through the library and the server, keep answering while a writer commits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from library_helpers import noise_images

from polymodal.library import Library
from polymodal.library.check import check_library


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "polymodal", *args]


def _env() -> dict[str, str]:
    env = {**os.environ, "POLYMODAL_MODEL": "lite", "HF_HUB_OFFLINE": "1"}
    env.pop("POLYMODAL_CACHE_DIR", None)  # the user's cache: the lite model's ONNX export is made once there
    return env


def _files(lib_dir: Path) -> int:
    if not (lib_dir / "db" / "files.lance").is_dir():
        return 0
    return Library.open(lib_dir, create=False).store.files().count_rows()


def _wait(lib_dir: Path, proc: subprocess.Popen, at_least: int, timeout: float = 100) -> None:
    deadline = time.monotonic() + timeout
    while _files(lib_dir) < at_least:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "the indexer exited"
        assert time.monotonic() < deadline, "the indexer made no progress"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_writers_are_serialised_and_readers_keep_answering(tmp_path, lite_encoder):
    from fastapi.testclient import TestClient

    from polymodal.server import ServerConfig, create_app

    folder, lib_dir = tmp_path / "imgs", tmp_path / "lib"
    n = 400  # enough batches of 8 that the first indexer is still running when the second has started
    noise_images(folder, n, size=32, seed=3)
    writer = subprocess.Popen(_cli("index", str(folder), "--library", str(lib_dir), "--batch-size", "8"),
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait(lib_dir, writer, at_least=8)
        # A second CLI indexer: refused at once, with the reason, before it writes anything.
        second = subprocess.run(_cli("index", str(folder), "--library", str(lib_dir)), env=_env(),
                                capture_output=True, text=True, timeout=120)
        assert writer.poll() is None, "the first indexer finished too soon to overlap; give it more files"
        assert second.returncode == 1
        assert "is being written by another polymodal process; wait for it to finish" in second.stderr
        # The server on the same library: searches answer from whole versions; its index job is refused.
        lib = Library.open(lib_dir, model=lite_encoder)
        app = create_app(ServerConfig(library=lib_dir, index_roots=(folder,), index_in_process=True), library=lib)
        counts = []
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            job = client.post("/api/jobs", json={"paths": [str(folder)]}).json()
            while (state := client.get(f"/api/jobs/{job['id']}").json())["state"] in ("queued", "running"):
                time.sleep(0.05)
            assert state["state"] == "failed" and "another polymodal process" in state["error"], state
            while writer.poll() is None:
                r = client.get("/api/search", params={"q": "a colourful picture", "k": 200, "all": "true"})
                assert r.status_code == 200, r.text
                hits = r.json()["hits"]
                assert len({h["id"] for h in hits}) == len(hits)
                counts.append(len(hits))
                report = check_library(Library.open(lib_dir, create=False).store, thumbnails=False)
                assert report.ok, report.errors
                # This writer only adds, and check reads files before items: not even a pending link problem.
                assert not [f for f in report.findings if f.kind != "unrecorded_path"], report.findings
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
    assert writer.returncode == 0, writer.stderr.read().decode() if writer.stderr else ""
    assert counts == sorted(counts) and len(set(counts)) >= 2, counts  # it saw the writer commit, never shrink
    final = check_library(Library.open(lib_dir, create=False).store)
    assert final.findings == [] and (final.items, final.files) == (n, n)


@pytest.mark.timeout(300)
def test_a_server_index_job_holds_off_the_cli(tmp_path, lite_encoder):
    from fastapi.testclient import TestClient

    from polymodal.server import ServerConfig, create_app

    folder, lib_dir = tmp_path / "imgs", tmp_path / "lib"
    noise_images(folder, 300, size=32, seed=4)
    lib = Library.open(lib_dir, model=lite_encoder)
    lib.add([folder / "img_0000.png"])  # the library exists, with its model, before the server starts
    app = create_app(ServerConfig(library=lib_dir, index_roots=(folder,), index_in_process=True), library=lib)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        job = client.post("/api/jobs", json={"paths": [str(folder)]}).json()
        deadline = time.monotonic() + 100
        while _files(lib_dir) < 9:
            assert client.get(f"/api/jobs/{job['id']}").json()["state"] in ("queued", "running")
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cli = subprocess.run(_cli("index", str(folder), "--library", str(lib_dir)), env=_env(),
                             capture_output=True, text=True, timeout=120)
        running = client.get(f"/api/jobs/{job['id']}").json()["state"]
        assert cli.returncode == 1 and "another polymodal process" in cli.stderr, cli.stderr
        while (state := client.get(f"/api/jobs/{job['id']}").json())["state"] in ("queued", "running"):
            time.sleep(0.1)
    assert running == "running", "the job ended before the CLI could collide with it; give it more files"
    assert state["state"] == "done", state
    final = check_library(Library.open(lib_dir, create=False).store)
    assert final.findings == [] and (final.items, final.files) == (300, 300)
