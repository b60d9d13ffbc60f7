"""``/health`` and ``/api/...``: search, similar, items, classify, status and index jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from polymodal.errors import InputError
from polymodal.server.service import SearchFilters, Service
from polymodal.server.uploads import check_image, read_upload

router = APIRouter()


def _service(request: Request) -> Service:
    return request.app.state.service


async def _images(service: Service, uploads: list[UploadFile]) -> list[bytes]:
    cfg = service.config
    out = []
    for up in uploads:
        # named by its file name: with several uploads, the user learns which one was refused
        what = f"{(up.filename or 'unnamed')[:80]!r} (an upload)"
        data = await read_upload(up, cfg.max_upload_bytes, what)
        out.append(check_image(data, cfg.max_upload_bytes, cfg.max_upload_pixels, what))
    return out


@router.get("/health", tags=["server"], summary="Liveness: the server is up (its model loads meanwhile; an "
            "error once the load failed)")
def health(request: Request) -> dict[str, str]:
    _check_loaded(request)
    return {"status": "ok"}


@router.head("/health", include_in_schema=False)  # load balancers and uptime checkers probe with HEAD
def health_head(request: Request) -> Response:
    _check_loaded(request)
    return Response()


def _check_loaded(request: Request) -> None:
    """A failed model load makes the server unhealthy; one still loading does not (routes wait for it)."""
    error = _service(request).loader.failed
    if error is not None:
        raise error.with_traceback(None)


@router.get("/api/version", tags=["server"], summary="polymodal's version, the model and the generator")
def version(request: Request) -> dict[str, Any]:
    from polymodal import __version__

    service = _service(request)
    encoder = service.encoder
    return {"polymodal": __version__, "model": encoder.name, "dim": encoder.dim,
            "runtimes": dict(encoder.runtimes),  # what each network runs on (onnx-fp32, onnx-int8, torch)
            "generator": service.generator.name if service.generator is not None else None}


@router.get("/api/status", tags=["library"], summary="What the library holds (as `polymodal status --json`)")
def status(request: Request) -> dict[str, Any]:
    return _service(request).library.status().to_dict()


_K = Query(10, description="hits per page (1-1000)")
_OFFSET = Query(0, description="hits to skip (pagination)")


def _filters(after: str | None, before: str | None, path: str | None, kind: str | None, tag: list[str],
             min_score: float | None, sort: str, fusion: str = "weighted", modality: str | None = None,
             all_hits: bool = False) -> SearchFilters:
    return SearchFilters(after=after, before=before, path=path, kind=kind, tags=tuple(tag), min_score=min_score,
                         sort=sort, fusion=fusion, modality=modality, all_hits=all_hits)


_ALL = "also the hits under the relevance floor: the k nearest whatever they score (a text query's hits " \
    "carry a calibrated confidence; by default only those above the floor come back)"


@router.get("/api/search", tags=["search"], summary="Search by text: weighted terms ('2:sunset'), --not terms, filters")
def search_get(
    request: Request,
    q: Annotated[list[str], Query(description="a text term (repeatable); 'W:TEXT' weighs it W")] = [],  # noqa: B006
    negative: Annotated[list[str], Query(alias="not", description="text to move away from (repeatable)")] = [],  # noqa: B006
    k: int = _K, offset: int = _OFFSET,
    after: str | None = None, before: str | None = None, path: str | None = Query(None, description="glob"),
    type: str | None = Query(None, description="image, video or audio"),
    tag: Annotated[list[str], Query()] = [],  # noqa: B006
    min_score: float | None = None, sort: str = "score", exact: bool = False,
    fusion: str = Query("weighted", description="video moments: weighted (default) or rrf fusion of visual "
                        "and speech evidence"),
    modality: str | None = Query(None, description="visual or speech evidence only"),
    all_hits: bool = Query(False, alias="all", description=_ALL),
) -> dict[str, Any]:
    page = _service(request).search(q, [], negative, [], _filters(after, before, path, type, tag, min_score, sort,
                                                                  fusion, modality, all_hits), k, offset, exact)
    return page.to_dict()


@router.post("/api/search", tags=["search"], summary="Search by uploaded image(s), optionally with text terms")
async def search_post(
    request: Request,
    image: Annotated[list[UploadFile], File(description="query image(s)")] = [],  # noqa: B006
    not_image: Annotated[list[UploadFile], File(description="image(s) to move away from")] = [],  # noqa: B006
    q: Annotated[list[str], Form()] = [],  # noqa: B006
    negative: Annotated[list[str], Form(alias="not")] = [],  # noqa: B006
    k: Annotated[int, Form()] = 10, offset: Annotated[int, Form()] = 0,
    after: Annotated[str | None, Form()] = None, before: Annotated[str | None, Form()] = None,
    path: Annotated[str | None, Form()] = None, type: Annotated[str | None, Form()] = None,
    tag: Annotated[list[str], Form()] = [],  # noqa: B006
    min_score: Annotated[float | None, Form()] = None, sort: Annotated[str, Form()] = "score",
    exact: Annotated[bool, Form()] = False,
    fusion: Annotated[str, Form()] = "weighted", modality: Annotated[str | None, Form()] = None,
    all_hits: Annotated[bool, Form(alias="all", description=_ALL)] = False,
    box: Annotated[str | None, Form(description="x0,y0,x1,y1: search with this region of the one query "
                                    "picture, in its pixels as displayed")] = None,
    item: Annotated[str | None, Form(description="a library item id as the query picture")] = None,
) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    service = _service(request)
    pos, neg = await _images(service, image), await _images(service, not_image)
    page = await run_in_threadpool(service.search, q, pos, negative, neg,
                                   _filters(after, before, path, type, tag, min_score, sort, fusion, modality,
                                            all_hits),
                                   k, offset, exact, box, item)
    return page.to_dict()


@router.post("/api/search/voice", tags=["search"], summary="Search by a spoken query: a recording transcribed by "
             "the server's offline Whisper, then searched as text")
async def search_voice(
    request: Request,
    audio: Annotated[UploadFile, File(description="the recording: WAV, MP3, M4A, WebM/Opus (a browser's "
                                      "MediaRecorder), at most 60 s")],
    k: Annotated[int, Form()] = 10, offset: Annotated[int, Form()] = 0,
    after: Annotated[str | None, Form()] = None, before: Annotated[str | None, Form()] = None,
    path: Annotated[str | None, Form()] = None, type: Annotated[str | None, Form()] = None,
    tag: Annotated[list[str], Form()] = [],  # noqa: B006
    min_score: Annotated[float | None, Form()] = None, sort: Annotated[str, Form()] = "score",
    all_hits: Annotated[bool, Form(alias="all", description=_ALL)] = False,
) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    from polymodal.speech.query import spoken_query

    service = _service(request)
    data = await read_upload(audio, service.config.max_upload_bytes, f"{(audio.filename or 'unnamed')[:80]!r}")
    heard = await run_in_threadpool(spoken_query, data, source=f"{(audio.filename or 'the upload')[:80]!r}")
    from polymodal.library.query import literal

    page = await run_in_threadpool(service.search, [literal(heard)], [], [], [],
                                   _filters(after, before, path, type, tag, min_score, sort, all_hits=all_hits),
                                   k, offset)
    return {**page.to_dict(), "transcript": heard}


@router.post("/api/explain", tags=["search"], summary="Where a text matches in a picture: a heatmap over the "
             "whole picture, its peak and box (as `polymodal explain --json`), or the overlay as PNG")
async def explain_post(
    request: Request,
    q: Annotated[str, Form(description="the words to look for")],
    image: Annotated[list[UploadFile], File(description="the picture (or give item)")] = [],  # noqa: B006
    item: Annotated[str | None, Form(description="a library item id as the picture")] = None,
    format: Annotated[str, Form(description="json (default) or png: the picture with the heatmap")] = "json",
) -> Any:
    from starlette.concurrency import run_in_threadpool

    if format not in ("json", "png"):
        raise InputError(f"format {format!r}: use json or png")
    service = _service(request)
    pictures = await _images(service, image)
    out = await run_in_threadpool(service.explain, q, pictures, item, format == "png")
    return Response(out, media_type="image/png") if format == "png" else out


@router.get("/api/similar/{item_id}", tags=["search"], summary="More like this: items similar to a library item")
def similar(
    request: Request, item_id: str, k: int = _K, offset: int = _OFFSET,
    after: str | None = None, before: str | None = None, path: str | None = None,
    type: str | None = None,
    tag: Annotated[list[str], Query()] = [],  # noqa: B006
    min_score: float | None = None, sort: str = "score",
) -> dict[str, Any]:
    return _service(request).similar(item_id, _filters(after, before, path, type, tag, min_score, sort),
                                     k, offset).to_dict()


@router.get("/api/items", tags=["items"], summary="The library without a query: newest first, a page at a time")
def browse(
    request: Request, k: int = Query(50, description="items per page (1-1000)"),
    type: str | None = Query(None, description="image, video or audio"),
    cursor: str | None = Query(None, description="the `next` of the previous page"),
) -> dict[str, Any]:
    if not 1 <= k <= 1000:
        raise InputError(f"k must be between 1 and 1000, got {k}")
    hits, following = _service(request).library.browse(cursor=cursor, k=k, kind=type)
    return {"hits": [h.to_dict() for h in hits], "next": following}


@router.get("/api/items/{item_id}", tags=["items"], summary="An item's metadata (the fields of a hit)")
def item(request: Request, item_id: str) -> dict[str, Any]:
    return _service(request).item(item_id).to_dict()


@router.get("/api/items/{item_id}/thumbnail", tags=["items"], summary="An item's WebP thumbnail",
            response_class=Response)
def thumbnail(request: Request, item_id: str) -> Response:
    data = _service(request).thumbnail(item_id)
    return Response(data, media_type="image/webp", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/items/{item_id}/original", tags=["items"], response_class=Response,
            summary="An item's original file: found by id only, inside the indexed folders, same bytes as indexed")
def original(request: Request, item_id: str) -> Response:
    from fastapi.responses import StreamingResponse

    from polymodal.server.files import RangeNotSatisfiable, parse_range

    orig = _service(request).open_original(item_id)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in orig.name)
    headers = {"Content-Disposition": f'inline; filename="{safe}"', "Cache-Control": "private, max-age=3600",
               "Accept-Ranges": "bytes"}
    try:
        wanted = parse_range(request.headers.get("range"), orig.size)
    except RangeNotSatisfiable as exc:
        orig.close()
        from polymodal.server.errors import error_response

        return error_response(416, str(exc), "invalid_request_error", "range", "range_not_satisfiable",
                              {"Content-Range": f"bytes */{exc.size}"})
    if wanted is None:  # the whole file
        headers["Content-Length"] = str(orig.size)
        return StreamingResponse(orig.read(), media_type=orig.media, headers=headers)
    first, last = wanted
    headers.update({"Content-Range": f"bytes {first}-{last}/{orig.size}", "Content-Length": str(last - first + 1)})
    return StreamingResponse(orig.read(first, last), status_code=206, media_type=orig.media, headers=headers)


@router.get("/api/items/{item_id}/segments/{segment_id}/thumbnail", tags=["items"], response_class=Response,
            summary="The WebP thumbnail of a video segment (a hit's `segment`), by item id and segment id")
def segment_thumbnail(request: Request, item_id: str, segment_id: str) -> Response:
    data = _service(request).segment_thumbnail(item_id, segment_id)
    return Response(data, media_type="image/webp", headers={"Cache-Control": "private, max-age=3600"})


@router.post("/api/classify", tags=["models"], summary="Zero-shot classify uploaded image(s) or a library item")
async def classify(
    request: Request,
    labels: Annotated[list[str], Form(description="labels, repeated or comma-separated")],
    image: Annotated[list[UploadFile], File()] = [],  # noqa: B006
    item: Annotated[str | None, Form(description="a library item id instead of an upload")] = None,
    top: Annotated[int | None, Form()] = None,
    templates: Annotated[str | None, Form(description="prompt templates: openai (80) or simple (7)")] = None,
) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    service = _service(request)
    images = await _images(service, image)
    if item:
        images.append((await run_in_threadpool(service.original, item))[0])
    names = [x.strip() for v in labels for x in v.split(",") if x.strip()]
    return {"results": await run_in_threadpool(service.classify, images, names, top, templates)}


class IndexRequest(BaseModel):
    paths: list[str] = Field(default_factory=list, description="folders or files under the server's --root "
                             "folders; empty: re-scan the folders the library already holds")


@router.post("/api/jobs", tags=["jobs"], status_code=202, summary="Start an index job in the background")
def start_job(request: Request, body: IndexRequest) -> dict[str, Any]:
    return _service(request).start_index(body.paths).to_dict()


@router.get("/api/jobs", tags=["jobs"], summary="Index jobs of this server, newest first")
def jobs(request: Request) -> dict[str, Any]:
    service = _service(request)
    return {"jobs": [j.to_dict() for j in service.jobs.list()], "roots": service.index_roots()}


@router.get("/api/jobs/{job_id}", tags=["jobs"], summary="An index job's state and progress (done of total)")
def job(request: Request, job_id: str) -> dict[str, Any]:
    return _service(request).jobs.get(job_id).to_dict()


@router.post("/api/jobs/{job_id}/pause", tags=["jobs"], summary="Pause a running index job where it stands "
             "(it keeps the library's writer lock)")
def pause_job(request: Request, job_id: str) -> dict[str, Any]:
    return _service(request).jobs.pause(job_id).to_dict()


@router.post("/api/jobs/{job_id}/resume", tags=["jobs"], summary="Resume a paused index job")
def resume_job(request: Request, job_id: str) -> dict[str, Any]:
    return _service(request).jobs.resume(job_id).to_dict()


@router.delete("/api/jobs/{job_id}", tags=["jobs"], summary="Cancel an index job (what it committed stays)")
def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    return _service(request).jobs.cancel(job_id).to_dict()
