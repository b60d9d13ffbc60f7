"""What a command pays before its real work: the default model's hub probe (remembered when it fails) and the
server's model load (in the background: /health answers at once)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from polymodal.errors import ModelLoadError
from polymodal.models import default
from polymodal.models.default import DEFAULT_MODEL, PROBE_FILE, RECHECK_ENV, resolve_model


class _Hub:
    """A model hub on 127.0.0.1 that counts the requests it gets and answers ``status``."""

    def __init__(self) -> None:
        self.requests = 0
        self.status = 503
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                hub.requests += 1
                self.send_response(hub.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Iterator[_Hub]:
    """No model named, the default's weights not cached, online (to this hub), a cache dir of the test's own."""
    server = _Hub()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", RECHECK_ENV, "POLYMODAL_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(default, "weights_cached", lambda repo: False)
    yield server
    server.close()


def test_a_hub_that_failed_is_not_asked_again_for_a_day(hub, tmp_path):
    first = resolve_model(None)
    assert first.spec == "lite" and hub.requests == 1 and "not reachable (HTTPError)" in first.notice
    again = resolve_model(None)
    assert again.spec == "lite" and hub.requests == 1  # remembered: no probe, no wait
    assert "checked 1 min ago" in again.notice and f"{RECHECK_ENV}=1" in again.notice and "\n" not in again.notice
    saved = json.loads((tmp_path / "cache" / PROBE_FILE).read_text())
    assert saved["endpoint"] == hub.url and saved["repo"] == DEFAULT_MODEL.split(":", 1)[1]


def test_a_day_later_or_when_asked_it_probes_again(hub, tmp_path, monkeypatch):
    resolve_model(None)
    path = tmp_path / "cache" / PROBE_FILE
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "checked": time.time() - default.PROBE_CACHE_SECONDS - 1}))
    resolve_model(None)
    assert hub.requests == 2
    monkeypatch.setenv(RECHECK_ENV, "1")
    resolve_model(None)
    assert hub.requests == 3


def test_a_hub_that_answers_is_never_remembered(hub, tmp_path, monkeypatch):
    """A remembered "yes" would send a later offline command to a download that cannot happen."""
    resolve_model(None)  # a failure remembered...
    hub.status = 200
    monkeypatch.setenv(RECHECK_ENV, "1")
    assert resolve_model(None).spec == DEFAULT_MODEL
    assert not (tmp_path / "cache" / PROBE_FILE).exists()  # ...and forgotten once the hub answered
    monkeypatch.delenv(RECHECK_ENV)
    assert resolve_model(None).spec == DEFAULT_MODEL and hub.requests == 3  # asked each time


def test_another_hub_is_asked_and_a_broken_cache_file_ignored(hub, tmp_path, monkeypatch):
    resolve_model(None)
    other = _Hub()
    try:
        monkeypatch.setenv("HF_ENDPOINT", other.url)
        resolve_model(None)
        assert other.requests == 1
    finally:
        other.close()
    (tmp_path / "cache" / PROBE_FILE).write_text("{not json")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert resolve_model(None).spec == "lite" and hub.requests == 2


def test_an_unwritable_cache_only_means_probing_again(hub, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(blocker / "cache"))  # under a file: cannot be made
    assert resolve_model(None).spec == "lite" and resolve_model(None).spec == "lite"
    assert hub.requests == 2


def test_offline_is_answered_without_huggingface_hubs_download_module(tmp_path):
    """Not cached and no cache folder for the repo: answered from the file system (no ~0.1 s import)."""
    import subprocess
    import sys

    code = ("import sys; from polymodal.models.default import weights_cached; "
            "print(weights_cached('nobody/nothing-here'), 'huggingface_hub.file_download' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


# -- the server: the model loads beside it --------------------------------------------------------------------


class _SlowLibrary:
    """Just enough of a Library for the app: an encoder that takes until ``release`` is set, or fails."""

    def __init__(self, root: Any, fail: bool = False) -> None:
        self.root = root
        self.release = threading.Event()
        self.fail = fail

    def encoder(self) -> Any:
        self.release.wait(30)
        if self.fail:
            raise ModelLoadError("cannot load model 'broken': no such directory")
        return type("Enc", (), {"name": "slow", "dim": 3, "runtimes": {"text": "onnx-fp32"}})()


def test_health_answers_while_the_model_loads_and_model_routes_wait(tmp_path):
    from fastapi.testclient import TestClient

    from polymodal.server import ServerConfig, create_app

    lib = _SlowLibrary(tmp_path)
    app = create_app(ServerConfig(library=tmp_path), library=lib)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/health").json() == {"status": "ok"}  # the load has not ended
        threading.Timer(0.3, lib.release.set).start()
        start = time.monotonic()
        assert client.get("/api/version").json()["model"] == "slow"  # waited for it
        assert time.monotonic() - start >= 0.2


def test_a_failed_load_makes_health_fail_and_is_raised_to_model_routes(tmp_path):
    from fastapi.testclient import TestClient

    from polymodal.server import ServerConfig, create_app

    lib = _SlowLibrary(tmp_path, fail=True)
    lib.release.set()
    app = create_app(ServerConfig(library=tmp_path), library=lib)
    app.state.service.loader.wait()
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        health = client.get("/health")
        assert health.status_code == 500 and "no such directory" in health.json()["error"]["message"]
        assert "no such directory" in client.get("/api/version").json()["error"]["message"]


def test_serve_stops_with_the_load_error(tmp_path):
    """As before the load moved beside the server: `polymodal serve` with a model that cannot load ends with
    that error (exit code 3 from the CLI), instead of serving without a model."""
    import socket

    from polymodal.server import ServerConfig
    from polymodal.server.run import run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lib = _SlowLibrary(tmp_path, fail=True)
    threading.Timer(0.5, lib.release.set).start()
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match="no such directory"):
        run(ServerConfig(library=tmp_path, port=port), library=lib)
    assert time.monotonic() - start < 20
