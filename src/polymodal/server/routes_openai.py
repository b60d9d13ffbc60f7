"""OpenAI-compatible ``/v1``: embeddings (text and images) and image generation, in OpenAI's shapes.

The official client sends ``encoding_format="base64"`` unless told otherwise and decodes little-endian
float32, so both encodings are answered. An image is given as a data URL, as plain base64 of an image
file, or as an object ``{"type": "image_url", "image_url": {"url": DATA_URL}}``; plain text stays text
unless it is long, strict base64 and decodes to an image file's first bytes.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from polymodal.errors import InputError, NotFoundError
from polymodal.server.service import Service
from polymodal.server.uploads import check_image, decode_base64_image

router = APIRouter(prefix="/v1", tags=["openai"])
MAX_INPUTS = 256


class _ParamError(InputError):
    def __init__(self, message: str, param: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def _service(request: Request) -> Service:
    return request.app.state.service


class EmbeddingRequest(BaseModel):
    input: Any
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


class ImageRequest(BaseModel):
    prompt: str
    model: str | None = None
    n: int = 1
    size: str | None = None
    response_format: Literal["b64_json", "url"] = "b64_json"
    quality: str | None = None
    style: str | None = None
    user: str | None = None


def _check_model(service: Service, model: str | None) -> None:
    if model and model not in (service.encoder.name, "polymodal"):
        raise _ParamError(f"model {model!r} is not served here; this server embeds with {service.encoder.name!r}",
                          "model", "model_not_found")


def _split(service: Service, value: Any) -> list[tuple[str, Any]]:
    """Each input as ("text", str) or ("image", bytes)."""
    cfg = service.config
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _ParamError("input is empty", "input")
    if len(items) > MAX_INPUTS:
        raise _ParamError(f"at most {MAX_INPUTS} inputs per request", "input")
    out: list[tuple[str, Any]] = []
    for it in items:
        if isinstance(it, dict):
            url = (it.get("image_url") or {}).get("url") if isinstance(it.get("image_url"), dict) else None
            url = url or it.get("image_url") or it.get("image")
            if isinstance(url, str):
                data = decode_base64_image(url, cfg.max_upload_bytes)
                out.append(("image", check_image(data or b"", cfg.max_upload_bytes, cfg.max_upload_pixels)))
            elif isinstance(it.get("text"), str):
                out.append(("text", it["text"]))
            else:
                raise _ParamError("an input object needs 'text', 'image' or 'image_url': {'url': DATA_URL}", "input")
        elif isinstance(it, str):
            if not it.strip():
                raise _ParamError("input holds an empty string", "input")
            data = decode_base64_image(it, cfg.max_upload_bytes, require=it.startswith("data:"))
            if data is not None:
                out.append(("image", check_image(data, cfg.max_upload_bytes, cfg.max_upload_pixels)))
            else:
                out.append(("text", it))
        elif isinstance(it, int) or (isinstance(it, list) and all(isinstance(x, int) for x in it)):
            raise _ParamError("token arrays are not accepted: this server has its own tokenizer; send text", "input")
        else:
            raise _ParamError("input must be a string, a list of strings, or image objects", "input")
    return out


@router.post("/embeddings", summary="Embeddings of texts and images (OpenAI's request and response shape)")
def embeddings(request: Request, body: EmbeddingRequest) -> dict[str, Any]:
    service = _service(request)
    _check_model(service, body.model)
    items = _split(service, body.input)
    if body.dimensions is not None and body.dimensions != service.encoder.dim:
        raise _ParamError(f"dimensions must be {service.encoder.dim} for {service.encoder.name!r} (its embeddings "
                          "are not truncatable)", "dimensions")
    vectors = np.zeros((len(items), service.encoder.dim), np.float32)
    texts = [i for i, (kind, _) in enumerate(items) if kind == "text"]
    images = [i for i, (kind, _) in enumerate(items) if kind == "image"]
    if texts:
        vectors[texts] = service.embed_texts([items[i][1] for i in texts])
    if images:
        vectors[images] = service.embed_images([items[i][1] for i in images])
    data = []
    for i, v in enumerate(vectors):
        emb: Any = (base64.b64encode(v.astype("<f4").tobytes()).decode() if body.encoding_format == "base64"
                    else [float(x) for x in v])
        data.append({"object": "embedding", "index": i, "embedding": emb})
    # usage is not counted: the encoder's tokenizer is not exposed, and 0 is honest where a guess is not
    return {"object": "list", "data": data, "model": service.encoder.name,
            "usage": {"prompt_tokens": 0, "total_tokens": 0}}


@router.get("/models", summary="The models this server answers for")
def models(request: Request) -> dict[str, Any]:
    service = _service(request)
    names = [service.encoder.name] + ([service.generator.name] if service.generator is not None else [])
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "polymodal"}
                                       for n in names]}


@router.post("/images/generations", summary="Text-to-image with the configured generator, reranked by CLIPScore")
def generations(request: Request, body: ImageRequest) -> dict[str, Any]:
    service = _service(request)
    if service.generator is None:
        raise NotFoundError("no image generator is configured on this server: start it with --generator SPEC")
    if body.model and body.model != service.generator.name:
        raise _ParamError(f"model {body.model!r} is not served here; this server generates with "
                          f"{service.generator.name!r}", "model", "model_not_found")
    if not 1 <= body.n <= 10:
        raise _ParamError(f"n must be from 1 to 10, got {body.n}", "n")
    images = service.generate(body.prompt, body.n, body.size)
    data = []
    for img in images:
        png = service.png(img.image)
        entry: dict[str, Any] = {"revised_prompt": img.revised_prompt} if img.revised_prompt else {}
        if body.response_format == "url":
            key = service.generated.put(png)
            entry["url"] = str(request.url_for("generated_image", key=key))
        else:
            entry["b64_json"] = base64.b64encode(png).decode()
        data.append(entry)
    return {"created": int(time.time()), "data": data}


@router.get("/images/files/{key}", name="generated_image", response_class=Response,
            summary="An image made for response_format=url (kept in memory for the last 64)")
def generated_image(request: Request, key: str) -> Response:
    return Response(_service(request).generated.get(key), media_type="image/png")
