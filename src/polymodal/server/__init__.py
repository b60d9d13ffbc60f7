"""``polymodal serve``: the library, the encoder and a generator behind an HTTP API and a web page.

The app is built by ``create_app(ServerConfig(...))``; ``run(config)`` serves it with uvicorn. Everything
heavy (FastAPI, the model) is imported or loaded only when a server is actually made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polymodal.server.config import ServerConfig

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(config: ServerConfig, **kwargs: Any) -> FastAPI:
    from polymodal.server.app import create_app as _create

    return _create(config, **kwargs)


__all__ = ["ServerConfig", "create_app"]
