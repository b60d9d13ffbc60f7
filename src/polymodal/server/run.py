"""Serving an app with uvicorn: the access log is ours (no query strings), the token never logged."""

from __future__ import annotations

from typing import Any

from polymodal.server.config import ServerConfig


def run(config: ServerConfig, *, library: Any = None, log_level: str = "warning") -> None:
    """Serve until stopped; a model that fails to load (in the background, loading.py) stops the server and
    is raised here, as it was when the model loaded before the server started."""
    import threading

    import uvicorn

    from polymodal.server.app import create_app

    app = create_app(config, library=library)
    # uvicorn's own access log prints full URLs, and /?token=... would land in it
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, access_log=False,
                                           log_level=log_level, server_header=False, proxy_headers=False))
    loader = app.state.service.loader

    def stop_if_failed() -> None:
        if loader.wait() is not None:
            server.should_exit = True

    threading.Thread(target=stop_if_failed, daemon=True, name="polymodal-load-watch").start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # as uvicorn.run: a stop, not an error
    if loader.failed is not None:
        loader.get()  # raises the load's error
    if not server.started:
        raise SystemExit(3)  # as uvicorn.run when it cannot bind (it has logged why): its STARTUP_FAILURE
