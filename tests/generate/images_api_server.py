"""A loopback stand-in for the OpenAI Images API: ``POST /v1/images/generations`` with the published request,
response (``{"created", "data": [{"b64_json" | "url", "revised_prompt"}]}``) and error
(``{"error": {"message", "type", "param", "code"}}``) shapes, plus ``GET /files/<name>`` for ``url`` results.

Each test scripts the answers it wants (``server.script``); every request is recorded for assertions.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

KEY = "sk-test-Secret1234567890abcdef"
SIZES = {"dall-e-2": {"256x256", "512x512", "1024x1024"}, "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"}}


@dataclass
class Reply:
    status: int
    error: dict[str, Any] | None = None  # the "error" object
    headers: dict[str, str] = field(default_factory=dict)


def _png(width: int, height: int, shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 255 - shade, (shade * 7) % 256)).save(buf, format="PNG")
    return buf.getvalue()


class ImagesAPI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body", "time"}
        self.script: list[Reply] = []  # answered in order before normal service
        self.files: dict[str, bytes] = {}
        self.counter = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                      ctype: str = "application/json") -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                api.requests.append({"path": self.path, "headers": dict(self.headers), "body": None,
                                     "time": time.monotonic()})
                name = self.path.rsplit("/", 1)[-1]
                if self.path.startswith("/files/") and name in api.files:
                    self._send(200, api.files[name], ctype="image/png")
                else:
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error",
                                               "param": None, "code": None}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")
                api.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                     "time": time.monotonic()})
                if self.path != "/v1/images/generations":
                    return self._send(404, {"error": {"message": f"Unknown path {self.path}",
                                                      "type": "invalid_request_error", "param": None,
                                                      "code": "unknown_url"}})
                auth = self.headers.get("Authorization", "")
                if not auth:
                    return self._send(401, {"error": {
                        "message": "You didn't provide an API key.", "type": "invalid_request_error",
                        "param": None, "code": None}})
                if auth != f"Bearer {KEY}":
                    given = auth.removeprefix("Bearer ")
                    return self._send(401, {"error": {  # OpenAI echoes (part of) the key it was given
                        "message": f"Incorrect API key provided: {given}. You can find your API key at "
                                   "https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
                if api.script:
                    reply = api.script.pop(0)
                    if reply.status != 200:
                        return self._send(reply.status, {"error": reply.error}, reply.headers)
                model, size = body.get("model", "dall-e-2"), body.get("size", "1024x1024")
                if model in SIZES and size not in SIZES[model]:
                    return self._send(400, {"error": {
                        "message": f"'{size}' is not one of {sorted(SIZES[model])} - 'size'",
                        "type": "invalid_request_error", "param": "size", "code": None}})
                w, h = (int(x) for x in size.split("x"))
                data = []
                for _ in range(int(body.get("n", 1))):
                    api.counter += 1
                    png = _png(w, h, (api.counter * 53) % 256)
                    item: dict[str, Any] = {"revised_prompt": f"{body['prompt']}, digital art"}
                    if body.get("response_format", "b64_json") == "url":
                        name = f"img{api.counter}.png"
                        api.files[name] = png
                        item["url"] = f"{api.base}/files/{name}"
                    else:
                        item["b64_json"] = base64.b64encode(png).decode()
                    data.append(item)
                self._send(200, {"created": 1700000000, "data": data})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["body"] is not None]

    def __enter__(self) -> ImagesAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
