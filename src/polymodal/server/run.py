"""Serving an app with uvicorn: the access log is ours (no query strings), the token never logged."""

from __future__ import annotations

from typing import Any

from polymodal.server.config import ServerConfig


def run(config: ServerConfig, *, library: Any = None, log_level: str = "warning") -> None:
    import uvicorn

    from polymodal.server.app import create_app

    app = create_app(config, library=library)
    # uvicorn's own access log prints full URLs, and /?token=... would land in it
    uvicorn.run(app, host=config.host, port=config.port, access_log=False, log_level=log_level,
                server_header=False, proxy_headers=False)
