"""The FastAPI app: the guard, the error handlers, the routes and the web page, over one ``Service``."""

from __future__ import annotations

import logging
import time
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from polymodal.server import errors, routes_api, routes_openai
from polymodal.server.config import ServerConfig
from polymodal.server.security import ASGIApp, Guard, Message, Receive, Scope, Send
from polymodal.server.service import Service

access_log = logging.getLogger("polymodal.server.access")

# The page loads only its own files; nothing inline, no third party, never framed.
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_CSP = (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        b"style-src 'self'; script-src 'self'; frame-ancestors 'none'")
# /docs is FastAPI's Swagger UI: an inline script and its files from jsDelivr (it needs the internet to render)
_DOCS_CSP = (b"content-security-policy", b"default-src 'self'; script-src 'self' 'unsafe-inline' "
             b"https://cdn.jsdelivr.net; style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: "
             b"https://fastapi.tiangolo.com; frame-ancestors 'none'")


class _Headers:
    """Adds the security headers to every response and logs method, path and status, never the query
    string (it may carry a token or a private search)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                csp = _DOCS_CSP if scope["path"] == "/docs" else _CSP
                message["headers"] = [*message.get("headers", []), *_HEADERS, csp]
                access_log.info("%s %s %s %.1f ms", scope["method"], scope["path"], message["status"],
                                (time.perf_counter() - start) * 1000)
            await send(message)

        await self.app(scope, receive, wrapped)


def _static(name: str) -> bytes:
    return resources.files("polymodal.server").joinpath("static", name).read_bytes()


_STATIC_TYPES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


def create_app(config: ServerConfig, *, library: Any = None, generator: Any = None) -> FastAPI:
    """The app for ``config``; ``library`` and ``generator`` may be given already opened (tests, embedding)."""
    config.check()
    if library is None:
        from polymodal.library import Library

        library = Library.open(config.library, create=True, model=config.model, runtime=config.runtime,
                               precision=config.precision)
    if generator is None and config.generator:
        from polymodal.generation import load_generator

        generator = load_generator(config.generator)
    app = FastAPI(title="polymodal", summary="Search, classify, embed and generate over a local media library",
                  version=_version(), docs_url="/docs", redoc_url=None)
    app.state.service = Service(config, library, generator)
    errors.install(app)
    app.include_router(routes_api.router)
    app.include_router(routes_openai.router)

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        # a fixed set of names: nothing from the request reaches the file system
        if name not in _STATIC_TYPES:
            from polymodal.errors import NotFoundError

            raise NotFoundError(f"no static file {name[:40]!r}")
        return Response(_static(name), media_type=_STATIC_TYPES[name])

    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST",
                           "DELETE"], allow_headers=["Authorization", "Content-Type"])
    # the last added runs first: headers and the access log wrap everything, then the guard refuses before
    # any route, body parsing or model work
    app.add_middleware(Guard, config=config)
    app.add_middleware(_Headers)
    return app


def _version() -> str:
    from polymodal import __version__

    return __version__
