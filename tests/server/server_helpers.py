"""Helpers shared by the server tests (importable from test modules)."""

from __future__ import annotations

from pathlib import Path

TOKEN = "test-token-0123456789abcdef"


def app_for(lib):
    """The app `polymodal serve` makes over an open library."""
    from polymodal.server import ServerConfig, create_app

    return create_app(ServerConfig(library=lib.root), library=lib)


def ids_by_name(client) -> dict[str, str]:
    """Item ids of the served library by photo name (cat, coffee, ...)."""
    hits = client.get("/api/search", params={"all": "true", "q": "a photo", "k": 100}).json()["hits"]
    return {Path(h["path"]).stem: h["id"] for h in hits}


class LiveServer:
    """An app served by uvicorn in a thread on a free loopback port (for real clients: openai, chromium)."""

    def __init__(self, app) -> None:
        import socket
        import threading

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        end = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < end and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
