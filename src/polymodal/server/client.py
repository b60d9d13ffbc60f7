"""A client for a running ``polymodal serve``: the same calls and return types as ``Library``, over HTTP.

This is what ``--server URL`` on the CLI is meant to use, so a command answers from the server's already
loaded model instead of loading its own. Standard library only (urllib), so it costs no dependency.

>>> lib = ServerClient("http://127.0.0.1:8000")                       # doctest: +SKIP
>>> [h.path for h in lib.search("a cat", k=3)]                         # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

import numpy as np

from polymodal.errors import AccessDeniedError, InputError, NotFoundError, PolymodalError, UploadTooLargeError
from polymodal.library.types import Failure, Hit, JobInfo, Status
from polymodal.zeroshot import Classification, LabelScore

_BY_STATUS: dict[int, type[PolymodalError]] = {400: InputError, 401: AccessDeniedError, 403: AccessDeniedError,
                                               404: NotFoundError, 413: UploadTooLargeError}


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def hit_from_dict(d: dict[str, Any]) -> Hit:
    """A hit as ``Hit.to_dict`` wrote it (fields this version does not know are left out)."""
    known = {f.name for f in fields(Hit)}
    values = {k: v for k, v in d.items() if k in known}
    values.update(score=float(d["score"]), paths=tuple(d.get("paths", ())), tags=tuple(d.get("tags", ())),
                  date=_when(d.get("date")))
    return Hit(**values)


def status_from_dict(d: dict[str, Any]) -> Status:
    """A library status as ``Status.to_dict`` (``GET /api/status``) wrote it."""
    known = {f.name for f in fields(Status)}
    values = {k: v for k, v in d.items() if k in known}
    values["failures"] = [Failure(f["path"], f["reason"]) for f in d.get("failures", [])]
    values["speech_failures"] = [Failure(f["path"], f["reason"]) for f in d.get("speech_failures", [])]
    job = d.get("last_job")
    values["last_job"] = JobInfo(job["id"], job["kind"], job["state"], _when(job.get("started")),
                                 _when(job.get("finished")), dict(job.get("counts", {}))) if job else None
    return Status(**values)


class ServerClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token if token is not None else (os.environ.get("POLYMODAL_TOKEN")
                                                      or os.environ.get("POLYMODAL_SERVER_TOKEN"))
        self.timeout = timeout

    def _request(self, method: str, path: str, *, params: Sequence[tuple[str, Any]] = (), body: bytes | None = None,
                 content_type: str | None = None, raw: bool = False) -> Any:
        query = urllib.parse.urlencode([(k, v) for k, v in params if v is not None])
        req = urllib.request.Request(f"{self.url}{path}{'?' + query if query else ''}", data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read() if raw else json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {exc.code}"
            raise _BY_STATUS.get(exc.code, PolymodalError)(f"server {self.url}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PolymodalError(f"cannot reach the polymodal server at {self.url}: {reason}; is "
                                 "`polymodal serve` running there?") from None

    def search(self, text: str | Sequence[str] | None = None, image: Any = None, *, negative: Sequence[str] = (),
               negative_images: Sequence[Any] = (), k: int = 10, offset: int = 0, after: str | None = None,
               before: str | None = None, path: str | None = None, kind: str | None = None,
               tags: Sequence[str] = (), min_score: float | None = None, sort: str = "score",
               exact: bool = False, fusion: str = "weighted", modality: str | None = None,
               floor: bool = True, box: str | Sequence[float] | None = None, item: str | None = None) -> list[Hit]:
        """As ``Library.search``; images (local paths or bytes) are uploaded, texts stay texts (``"2:sunset"``
        weighs a text term, on the server)."""
        texts = [text] if isinstance(text, str) else list(text or [])
        images = [] if image is None else (list(image) if isinstance(image, (list, tuple)) else [image])
        form: list[tuple[str, Any]] = [("q", t) for t in texts] + [("not", n) for n in negative]
        form += [("k", k), ("offset", offset), ("after", after), ("before", before), ("path", path),
                 ("type", kind), ("min_score", min_score), ("sort", sort)] + [("tag", t) for t in tags]
        if exact:
            form.append(("exact", "true"))
        if not floor:
            form.append(("all", "true"))
        if box is not None:  # a region of the one uploaded image, or of the library item ``item``
            form.append(("box", box if isinstance(box, str) else ",".join(str(v) for v in box)))
        if item is not None:
            form.append(("item", item))
        if fusion != "weighted" or modality is not None:
            form += [("fusion", fusion), ("modality", modality)]
        if not images and not negative_images and box is None:
            data = self._request("GET", "/api/search", params=form)
        else:
            uploads = [("image", _read(i)) for i in images] + [("not_image", _read(i)) for i in negative_images]
            body, ctype = _multipart([(k_, str(v)) for k_, v in form if v is not None], uploads)
            data = self._request("POST", "/api/search", body=body, content_type=ctype)
        return [hit_from_dict(h) for h in data["hits"]]

    def similar(self, item_id: str, *, k: int = 10, offset: int = 0, after: str | None = None,
                before: str | None = None, path: str | None = None, kind: str | None = None,
                tags: Sequence[str] = (), min_score: float | None = None, sort: str = "score") -> list[Hit]:
        """Items like the library item ``item_id`` (an id: a server never reads a path it is sent)."""
        params: list[tuple[str, Any]] = [("k", k), ("offset", offset), ("after", after), ("before", before),
                                         ("path", path), ("type", kind), ("min_score", min_score),
                                         ("sort", sort)] + [("tag", t) for t in tags]
        data = self._request("GET", f"/api/similar/{urllib.parse.quote(item_id, safe='')}", params=params)
        return [hit_from_dict(h) for h in data["hits"]]

    def classify(self, images: Sequence[Any], labels: Sequence[str], *, templates: str | None = None,
                 top: int | None = None) -> list[Classification]:
        """As ``polymodal.zeroshot.classify`` with the server's model: images (paths or bytes) are uploaded."""
        form = [("labels", label) for label in labels] + [("templates", templates), ("top", top)]
        body, ctype = _multipart([(k, str(v)) for k, v in form if v is not None],
                                 [("image", _read(i)) for i in images])
        data = self._request("POST", "/api/classify", body=body, content_type=ctype)
        return [Classification(os.fspath(i) if not isinstance(i, (bytes, bytearray)) else f"<{len(i)} bytes>",
                               [LabelScore(x["label"], float(x["score"])) for x in r["labels"]])
                for i, r in zip(images, data["results"])]

    def thumbnail(self, item_id: str, segment: str | None = None) -> bytes:
        """The WebP thumbnail of an item, or of one of its video segments (a hit's ``segment``)."""
        path = f"/api/items/{urllib.parse.quote(item_id, safe='')}"
        if segment is not None:
            path += f"/segments/{urllib.parse.quote(segment, safe='')}"
        data: bytes = self._request("GET", path + "/thumbnail", raw=True)
        return data

    def status(self) -> Status:
        return status_from_dict(self._request("GET", "/api/status"))

    def embed(self, inputs: Sequence[str | bytes]) -> np.ndarray:
        """Embeddings of texts and images (bytes) from the server's model, as float32 rows."""
        items = [f"data:;base64,{base64.b64encode(x).decode()}" if isinstance(x, bytes) else x for x in inputs]
        data = self._request("POST", "/v1/embeddings", body=json.dumps({"input": items}).encode(),
                             content_type="application/json")
        return np.array([d["embedding"] for d in data["data"]], dtype=np.float32)


def _read(item: Any) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    try:
        with open(os.fspath(item), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"cannot read query image {os.fspath(item)}: {exc.strerror}") from None


def _multipart(fields: list[tuple[str, str]], files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    parts = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for i, (name, data) in enumerate(files):
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="image{i}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
