"""Errors as JSON in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, never a stack trace.

polymodal's own errors carry messages written for users, so they are passed on; anything else is logged
here and answered with a generic 500, since its text may hold paths or internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from polymodal import errors as E

log = logging.getLogger("polymodal.server")

# most specific first: the first class an error is an instance of decides
_STATUS: list[tuple[type[E.PolymodalError], int, str]] = [
    (E.AccessDeniedError, 403, "permission_error"),
    (E.NotFoundError, 404, "not_found_error"),
    (E.UploadTooLargeError, 413, "invalid_request_error"),
    (E.RateLimitError, 429, "rate_limit_error"),
    (E.ProviderAuthError, 502, "api_error"),
    (E.ContentPolicyError, 400, "invalid_request_error"),
    (E.ProviderError, 502, "api_error"),
    (E.LibraryLockedError, 409, "conflict_error"),
    (E.ModelMismatchError, 409, "conflict_error"),
    (E.MissingDependencyError, 501, "not_implemented_error"),
    (E.ModelSpecError, 400, "invalid_request_error"),
    (E.InputError, 400, "invalid_request_error"),
]


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, param, code), status_code=status, headers=headers)


def from_polymodal(exc: E.PolymodalError) -> JSONResponse:
    for cls, status, type_ in _STATUS:
        if isinstance(exc, cls):
            headers = None
            if isinstance(exc, E.AccessDeniedError) and getattr(exc, "unauthenticated", False):
                status, type_, headers = 401, "authentication_error", {"WWW-Authenticate": "Bearer"}
            return error_response(status, str(exc), type_, getattr(exc, "param", None),
                                  getattr(exc, "code", None) or type(exc).__name__, headers)
    return error_response(500, str(exc), "server_error", None, type(exc).__name__)


_ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": "string", "nullable": True}, "code": {"type": "string", "nullable": True}}}},
}


def _document_errors(app: FastAPI) -> None:
    """The OpenAPI document says what the server answers: FastAPI's generated spec promises a 422 with its own
    validation body on every route, but bad input gets a 400 in the shape above (``_validation``), and a
    client generated from the spec would otherwise expect the wrong status and body."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        error = {"description": "bad input: the message says which and why",
                 "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault("400", error)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas["Error"] = _ERROR_SCHEMA
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    _document_errors(app)

    @app.exception_handler(E.PolymodalError)
    async def _polymodal(request: Request, exc: E.PolymodalError) -> JSONResponse:
        return from_polymodal(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            # its loc is ("body", character offset): not a parameter, and "1: JSON decode error" said nothing
            reason = (first.get("ctx") or {}).get("error", "")
            where = first.get("loc", ())[-1] if first.get("loc") else "?"
            return error_response(400, f"the request body is not valid JSON ({reason or 'decode error'} at "
                                  f"character {where})", "invalid_request_error", None, "invalid_json")
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form")]
        param = ".".join(loc) or None
        msg = f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg", "invalid request"))
        return error_response(400, msg, "invalid_request_error", param, "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), type_, None, None,
                              dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The only place a traceback goes is the server's log; the client learns nothing internal.
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error (see the server's log)", "server_error")
