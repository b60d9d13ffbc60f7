"""The checks every request passes before any route runs: the Host header, then the token.

Host: a page on another site can make a browser send requests to 127.0.0.1 under its own name by
re-pointing DNS (DNS rebinding); such requests carry the foreign name in ``Host``, so only the names the
server was bound as are accepted. Token: compared in constant time (``hmac.compare_digest``) whether it
comes as ``Authorization: Bearer`` (what the OpenAI client sends as its api_key) or as the cookie the web
page gets from ``/?token=...``. Pure ASGI, so that a refused request costs no route, body or model work.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from polymodal.server.config import ServerConfig, is_loopback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "polymodal_token"
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def allowed_host_names(config: ServerConfig) -> frozenset[str] | None:
    """Names the Host header may carry; None: any (a wildcard bind, which always has a token)."""
    extra = {h.lower().strip("[]") for h in config.allowed_hosts}
    if config.host in _WILDCARDS:
        return frozenset(extra) if extra else None
    names = {config.host.lower().strip("[]"), *extra}
    if is_loopback(config.host):
        names |= _LOOPBACK_NAMES
    return frozenset(names)


def host_name(value: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


class Guard:
    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.token = config.token
        self.hosts = allowed_host_names(config)
        self.cors = bool(config.cors_origins)
        # all uploads of one request together, plus room for the form's other fields
        self.max_body = config.max_upload_bytes + (1 << 20)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.hosts is not None:
            host = host_name(headers.get("host", ""))
            if host not in self.hosts:
                await _refuse(send, 400, "permission_error", "the Host header names a host this server does not "
                              "serve (start it with --allow-host NAME to accept that name)", "bad_host")
                return
        preflight = scope.get("method") == "OPTIONS" and "access-control-request-method" in headers
        # a browser never sends credentials on a CORS preflight; the CORS layer answers it without any route
        if self.token is not None and not (self.cors and preflight):
            given = _bearer(headers.get("authorization", "")) or _cookie(headers.get("cookie", ""))
            if given is None and scope.get("path") == "/" and scope.get("method") == "GET":
                from_query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
                if from_query is not None and _same(from_query, self.token):
                    await _login(send, self.token)
                    return
            if given is None or not _same(given, self.token):
                await _refuse(send, 401, "authentication_error",
                              "missing or wrong token: send 'Authorization: Bearer TOKEN', or open /?token=TOKEN "
                              "in the browser", "invalid_api_key", {"www-authenticate": "Bearer"})
                return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            await _refuse(send, 413, "invalid_request_error", f"the request body is larger than the server's "
                          f"limit of {self.max_body} bytes", "request_too_large")
            return
        await self._bounded(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a body past ``max_body`` as it streams in (chunked, or lying about its length): the
        multipart parser would otherwise spool all of it to disk before any route could look at its size.
        The 413 goes out from here; the app then sees a disconnect, and whatever it answers is dropped."""
        seen = 0
        refused = False

        async def counting() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    refused = True
                    await _refuse(send, 413, "invalid_request_error", "the request body is larger than the "
                                  f"server's limit of {self.max_body} bytes", "request_too_large")
                    return {"type": "http.disconnect"}
            return message

        async def sending(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting, sending)


def _bearer(value: str) -> str | None:
    scheme, _, rest = value.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else None


def _cookie(value: str) -> str | None:
    if not value:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(value)
    except Exception:  # noqa: BLE001 - a malformed cookie header is just no token
        return None
    return jar[COOKIE].value if COOKIE in jar else None


async def _login(send: Send, token: str) -> None:
    """Trade ``/?token=`` for an HttpOnly, SameSite=Strict cookie and drop the token from the address bar."""
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()), (b"content-length", b"0"),
                            (b"referrer-policy", b"no-referrer")]})
    await send({"type": "http.response.body", "body": b""})


async def _refuse(send: Send, status: int, type_: str, message: str, code: str,
                  extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
