"""Index jobs over HTTP (start, progress, cancel) and the ``polymodal serve`` command itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "library"))  # library_helpers

from library_helpers import noise_images


@pytest.fixture(params=[False, True], ids=["child-process", "in-process"])
def job_app(request, tmp_path, photos, lite):
    from polymodal.library import Library
    from polymodal.server import ServerConfig, create_app

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    lib = Library.open(tmp_path / "lib", model=lite)
    config = ServerConfig(library=lib.root, index_roots=(allowed,), index_in_process=request.param)
    app = create_app(config, library=lib)
    return app, allowed


def _client(app):
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1:8000")


def _wait(c, job_id: str, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while True:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running", "paused") or time.monotonic() > end:
            return job
        time.sleep(0.05)


def test_an_index_job_runs_in_the_background_with_progress(job_app, photos):
    app, allowed = job_app
    folder = allowed / "new"
    folder.mkdir()
    for name in ("cat", "rocket", "coffee"):
        shutil.copy(photos[name], folder / photos[name].name)
    with _client(app) as c:
        assert c.get("/api/search", params={"all": "true", "q": "a cat"}).json()["hits"] == []
        r = c.post("/api/jobs", json={"paths": [str(folder)]})
        assert r.status_code == 202 and r.json()["state"] in ("queued", "running", "done")
        job = _wait(c, r.json()["id"])
        assert job["state"] == "done" and job["done"] == job["total"] == 3
        assert job["report"]["added"] == 3
        hits = c.get("/api/search", params={"all": "true", "q": "a cat"}).json()["hits"]
        assert Path(hits[0]["path"]).name == photos["cat"].name
        assert c.get("/api/jobs").json()["jobs"][0]["id"] == job["id"]
        # no paths: re-scan what the library holds (nothing changed)
        again = _wait(c, c.post("/api/jobs", json={}).json()["id"])
        assert again["state"] == "done" and again["report"]["skipped"] == 3
        assert c.get("/api/jobs/ffffffffffffffff").status_code == 404


def test_a_job_can_be_cancelled_and_keeps_what_it_committed(job_app):
    app, allowed = job_app
    noise_images(allowed / "noise", 400, size=64)
    with _client(app) as c:
        job_id = c.post("/api/jobs", json={"paths": [str(allowed / "noise")]}).json()["id"]
        assert c.post("/api/jobs", json={"paths": [str(allowed)]}).status_code == 409  # one at a time
        assert c.delete(f"/api/jobs/{job_id}").status_code == 200
        job = _wait(c, job_id)
        assert job["state"] == "cancelled" and job["done"] < 400
        st = c.get("/api/status").json()
        assert st["last_job"]["state"] == "interrupted" and st["items"] == job["done"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_polymodal_serve_refuses_a_public_bind_without_a_token(tmp_path):
    env = {**os.environ, "POLYMODAL_CONFIG": str(tmp_path / "none.toml")}
    env.pop("POLYMODAL_SERVER_TOKEN", None)
    out = subprocess.run([sys.executable, "-m", "polymodal", "serve", "--host", "0.0.0.0", "--library",
                          str(tmp_path / "lib")], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2 and "without a token" in out.stderr and "Traceback" not in out.stderr


def test_polymodal_serve_serves_the_library(served_library, tmp_path):
    lib, _ = served_library
    port = _free_port()
    env = {**os.environ, "POLYMODAL_CONFIG": str(tmp_path / "none.toml")}
    proc = subprocess.Popen([sys.executable, "-m", "polymodal", "serve", "--library", str(lib.root), "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        # /health answers while the model loads beside the server: the first search waits for it
        hits = httpx.get(f"http://127.0.0.1:{port}/api/search", params={"all": "true", "q": "a cup of coffee", "k": 1},
                         timeout=60).json()
        assert Path(hits["hits"][0]["path"]).stem == "coffee"
        assert httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": "evil.example"}).status_code == 400
    finally:
        proc.terminate()
        proc.wait(20)


def test_polymodal_serve_watch_keeps_the_library_in_step(tmp_path, photos, lite):
    folder = tmp_path / "phone"
    folder.mkdir()
    shutil.copy(photos["coffee"], folder / "coffee.png")
    port = _free_port()
    env = {**os.environ, "POLYMODAL_CONFIG": str(tmp_path / "none.toml"),
           "POLYMODAL_CACHE_DIR": str(lite.folder.parents[2])}  # the session's export: no second one
    proc = subprocess.Popen([sys.executable, "-m", "polymodal", "serve", "--library", str(tmp_path / "lib"),
                             "--port", str(port), "--model", "lite", "--watch", str(folder)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"

    def found(name: str) -> bool:
        try:
            hits = httpx.get(f"{url}/api/search", params={"all": "true", "q": "a photo", "k": 50}, timeout=30)
        except httpx.TransportError:
            return False
        return hits.status_code == 200 and any(Path(h["path"]).name == name for h in hits.json()["hits"])

    try:
        end = time.monotonic() + 90
        while not found("coffee.png"):  # the watcher's first pass, read by the server
            assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.3)
        shutil.copy(photos["cat"], folder / "cat.png")
        end = time.monotonic() + 30
        while not found("cat.png"):
            assert time.monotonic() < end, "the watched folder's new photo never reached the server"
            time.sleep(0.2)
        running = subprocess.run(["pgrep", "-f", f"index {folder} --watch"], capture_output=True, text=True)
        assert running.stdout.strip()  # positive control for the check below: the watcher is found while it runs
    finally:
        proc.send_signal(__import__("signal").SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "watching" in out
    left = subprocess.run(["pgrep", "-f", f"index {folder} --watch"], capture_output=True, text=True)
    assert not left.stdout.strip(), "the watcher outlived the server"


def _process_state(pid: int) -> str:
    """The kernel's one-letter state of a process: R running, S sleeping, T stopped, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _settles(pid: int, stopped: bool, seconds: float = 5.0) -> bool:
    """Whether the process reaches (or leaves) the stopped state within ``seconds``: a signal is delivered
    asynchronously, so /proc may show the old state for a moment after kill() returns."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if (_process_state(pid) == "T") == stopped:
            return True
        time.sleep(0.02)
    return False


def test_a_job_can_be_paused_and_resumed(job_app):
    app, allowed = job_app
    noise_images(allowed / "noise", 300, size=64)
    in_process = app.state.service.config.index_in_process
    with _client(app) as c:
        job_id = c.post("/api/jobs", json={"paths": [str(allowed / "noise")]}).json()["id"]
        end = time.monotonic() + 60
        while c.get(f"/api/jobs/{job_id}").json()["done"] == 0:  # under way
            assert time.monotonic() < end
            time.sleep(0.05)
        paused = c.post(f"/api/jobs/{job_id}/pause").json()
        assert paused["state"] == "paused"
        job = app.state.service.jobs.get(job_id)
        if not in_process:
            assert job.pid is not None and _settles(job.pid, stopped=True)  # the index process is stopped
        time.sleep(1.0)  # whatever batch was in flight lands; then nothing moves
        before = c.get(f"/api/jobs/{job_id}").json()["done"]
        time.sleep(1.5)
        still = c.get(f"/api/jobs/{job_id}").json()
        assert still["state"] == "paused" and still["done"] == before < 300
        assert c.post(f"/api/jobs/{job_id}/pause").status_code == 400  # only a running job pauses
        assert c.post(f"/api/jobs/{job_id}/resume").json()["state"] == "running"
        if not in_process:
            assert _settles(job.pid, stopped=False)
        done = _wait(c, job_id, timeout=120)
        assert done["state"] == "done" and done["report"]["added"] == 300
