"""What the server does, without HTTP: search, items, classify, embed and generate over one loaded model.

Routes translate requests into these calls and their results into JSON. Text from a request is always
text here: the library's query parser would treat a text naming an existing file as that image, which a
server must never do for a path from the network, so terms are built directly as text or uploaded bytes.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.errors import InputError, NotFoundError
from polymodal.server.config import ServerConfig
from polymodal.server.files import Original, check_item_id, library_roots, open_original, read_original
from polymodal.server.jobs import JobRunner, allowed_paths
from polymodal.server.loading import EncoderLoader

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

_WEIGHT = re.compile(r"^(\d+(?:\.\d+)?|\.\d+):(.+)$", re.S)
_SEGMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # e.g. v0003: a key in the segments table, never a path
MAX_K = 1000
MAX_OFFSET = 10_000
MAX_TERMS = 16
MAX_TEXT_CHARS = 2000


@dataclass(frozen=True)
class SearchFilters:
    after: str | None = None
    before: str | None = None
    path: str | None = None
    kind: str | None = None
    tags: tuple[str, ...] = ()
    min_score: float | None = None
    sort: str = "score"
    fusion: str = "weighted"  # how a video's visual and speech evidence combine: weighted or rrf
    modality: str | None = None  # visual or speech only
    all_hits: bool = False  # also hits under the relevance floor (searches only: library/relevance.py)


@dataclass
class Page:
    hits: list[Any]
    k: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {"hits": [h.to_dict() for h in self.hits], "k": self.k, "offset": self.offset,
                "next_offset": self.offset + len(self.hits) if len(self.hits) == self.k else None}


def text_term(value: str, negative: bool = False) -> Any:
    """``"2:sunset"`` -> a text term of weight 2 (-2 when negative); never a file."""
    from polymodal.library.query import Term

    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        raise InputError(f"a query term must be text of at most {MAX_TEXT_CHARS} characters")
    weight, body = 1.0, value
    m = _WEIGHT.match(value)
    if m:
        weight, body = float(m.group(1)), m.group(2)
        if weight == 0:
            raise InputError(f"query term {value!r} has weight 0; use a positive weight, or drop the term")
    if not body.strip():
        raise InputError("a query term is empty")
    return Term(-weight if negative else weight, text=body)


def _check_page(k: int, offset: int) -> None:
    if not 1 <= k <= MAX_K:
        raise InputError(f"k must be from 1 to {MAX_K}, got {k}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InputError(f"offset must be from 0 to {MAX_OFFSET}, got {offset}")


@dataclass
class Generated:
    """PNG bytes of images made for ``response_format=url``, kept in memory for a while (bounded)."""

    limit: int = 64
    images: OrderedDict[str, bytes] = field(default_factory=OrderedDict)

    def put(self, png: bytes) -> str:
        import secrets

        key = secrets.token_urlsafe(16)
        self.images[key] = png
        while len(self.images) > self.limit:
            self.images.popitem(last=False)
        return key

    def get(self, key: str) -> bytes:
        if key not in self.images:
            raise NotFoundError("no generated image with this id (they are kept in memory for the last 64 only)")
        return self.images[key]


class Service:
    def __init__(self, config: ServerConfig, library: Any, generator: Any = None) -> None:
        self.config = config
        self.library = library
        # loaded once (no cold start per query), beside the server starting: /health answers meanwhile
        self.loader = EncoderLoader(library.encoder).start()
        self.generator = generator
        self._generate_lock = threading.Lock()  # one generation at a time: it takes the whole machine
        self.generated = Generated()
        self.jobs = JobRunner(self._index)

    @property
    def encoder(self) -> Encoder:
        """The library's encoder, waiting for the start-up load if it is still running."""
        encoder: Encoder = self.loader.get()
        return encoder

    # -- searching --------------------------------------------------------------------------------------------

    def search(self, texts: list[str], images: list[bytes], negative_texts: list[str], negative_images: list[bytes],
               filters: SearchFilters, k: int = 10, offset: int = 0, exact: bool = False,
               box: str | None = None, item: str | None = None) -> Page:
        """``item``: a library item (by id) as a query image; ``box``: search with that region of the one
        query image (uploaded, or the item)."""
        from polymodal.library.query import Term

        _check_page(k, offset)
        pictures: list[Any] = list(images)
        if item is not None:
            pictures.append(self.original(item)[0])  # by id only: the server never reads a path it is sent
        if box is not None:
            from polymodal.media.regions import crop, parse_box

            if len(pictures) != 1:
                raise InputError(f"a box searches with a region of one picture (an upload or item=ID); "
                                 f"{len(pictures)} were given")
            pictures = [crop(pictures[0], parse_box(box))]
        images = pictures
        if len(texts) + len(images) + len(negative_texts) + len(negative_images) > MAX_TERMS:
            raise InputError(f"a search takes at most {MAX_TERMS} terms")
        terms = [text_term(t) for t in texts] + [Term(1.0, image=b) for b in images]
        terms += [text_term(t, negative=True) for t in negative_texts] + [Term(-1.0, image=b) for b in negative_images]
        if not any(t.weight > 0 for t in terms):
            raise InputError("a search needs at least one positive term: q=TEXT, or an uploaded image")
        self.encoder  # noqa: B018 - waits for the start-up load: the library must not start a second one
        # built terms: the library's parser would read a text naming an existing file as that image
        hits = self.library.search(terms=terms, k=k + offset, exact=exact, **self._filters(filters, moments=True))
        return Page(hits[offset:], k, offset)

    @staticmethod
    def _filters(filters: SearchFilters, moments: bool = False) -> dict[str, Any]:
        out = {"after": filters.after, "before": filters.before, "path": filters.path, "kind": filters.kind,
               "tags": tuple(filters.tags), "min_score": filters.min_score, "sort": filters.sort}
        if moments and (filters.fusion != "weighted" or filters.modality is not None):
            out.update(fusion=filters.fusion, modality=filters.modality)  # only searches take these
        if moments:
            out["floor"] = not filters.all_hits
        return out

    def similar(self, item_id: str, filters: SearchFilters, k: int = 10, offset: int = 0) -> Page:
        _check_page(k, offset)
        hit = self.item(item_id)  # an id only: Library.similar would also take a path
        return Page(self.library.similar(hit.id, k=k + offset, **self._filters(filters))[offset:], k, offset)

    # -- items ------------------------------------------------------------------------------------------------

    def item(self, item_id: str) -> Any:
        check_item_id(item_id)
        hit = self.library.get(item_id)
        if hit is None or hit.id != item_id:
            raise NotFoundError(f"no item {item_id} in the library")
        return hit

    def thumbnail(self, item_id: str) -> bytes:
        self.item(item_id)
        data = self.library.thumbnail(item_id)
        if not data:
            raise NotFoundError(f"item {item_id} has no thumbnail")
        return bytes(data)

    def original(self, item_id: str) -> tuple[bytes, str, str]:
        hit = self.item(item_id)
        return read_original(item_id, tuple(hit.paths) or (hit.path,), library_roots(self.library))

    def open_original(self, item_id: str) -> Original:
        """The item's file, verified and open (the caller streams it, in byte ranges for a video player)."""
        hit = self.item(item_id)
        return open_original(item_id, tuple(hit.paths) or (hit.path,), library_roots(self.library))

    def segment_thumbnail(self, item_id: str, segment_id: str) -> bytes:
        """A video segment's stored thumbnail, by item id and segment id (``Hit.segment``) only."""
        self.item(item_id)
        if not _SEGMENT_ID.match(segment_id):
            raise InputError(f"{segment_id[:40]!r} is not a segment id")
        data = self.library.segment_thumbnail(item_id, segment_id)
        if not data:
            raise NotFoundError(f"item {item_id} has no segment {segment_id}")
        return bytes(data)

    # -- models -----------------------------------------------------------------------------------------------

    def explain(self, text: str, images: list[bytes], item: str | None = None, png: bool = False) -> Any:
        """Where ``text`` matches in one picture (an upload or library item ``item``): the explanation's
        JSON, or with ``png`` the picture with its heatmap overlaid, as PNG bytes."""
        from polymodal.explain import explain
        from polymodal.media.images import load_image

        pictures: list[Any] = list(images)
        if item is not None:
            pictures.append(self.original(item)[0])
        if len(pictures) != 1:
            raise InputError(f"explain takes one picture (an upload or item=ID); {len(pictures)} were given")
        picture = load_image(pictures[0])
        found = explain(picture, text, self.encoder, truncate=True)
        if not png:
            return found.to_dict()
        import io

        from polymodal.explain.overlay import overlay

        buf = io.BytesIO()
        overlay(picture, found).save(buf, format="PNG")
        return buf.getvalue()

    def classify(self, images: list[bytes], labels: list[str], top: int | None = None,
                 templates: str | None = None) -> list[dict[str, Any]]:
        from polymodal.zeroshot import classify

        if not images:
            raise InputError("classify needs an image: upload one, or name a library item")
        if len(labels) > 1000:
            raise InputError("at most 1000 labels")
        if templates not in (None, "openai", "simple"):
            # a name only: a file of templates is for local commands, a server never opens a path it is sent
            raise InputError(f"templates must be openai or simple, got {str(templates)[:40]!r}")
        results = classify(images, labels, self.encoder, top=top, templates=templates)
        return [{"labels": [{"label": s.label, "score": s.score} for s in r.labels]} for r in results]

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode_texts(texts)

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        return self.encoder.encode_images(images)

    def generate(self, prompt: str, n: int, size: str | None) -> list[Any]:
        from polymodal.generation import generate

        if self.generator is None:
            raise NotFoundError("no image generator is configured on this server: start it with --generator SPEC")
        with self._generate_lock:
            return generate(prompt, n=n, keep=n, model=self.generator, size=size, encoder=self.encoder)

    @staticmethod
    def png(image: Any) -> bytes:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    # -- indexing ---------------------------------------------------------------------------------------------

    def index_roots(self) -> list[str]:
        import os

        return sorted({os.path.realpath(p) for p in self.config.index_roots} | set(library_roots(self.library)))

    def start_index(self, paths: list[str] | None) -> Any:
        roots = self.index_roots()
        chosen = allowed_paths(paths, roots) if paths else library_roots(self.library)
        if not chosen:
            raise InputError("nothing to index: give paths under the server's --root folders")
        return self.jobs.start(chosen)

    def _index(self, paths: list[str], progress: Any, started: Any = None) -> Any:
        if self.config.index_in_process:
            from polymodal.library import Library

            # its own Library (and Store), over the same loaded encoder: readers are not disturbed
            lib = Library.open(self.library.root, create=False, model=self.encoder)
            return lib.add(paths, progress=progress)
        from polymodal.server.indexproc import index_in_child

        return index_in_child(str(self.library.root), paths, progress, self.config.runtime, self.config.precision,
                              started=started)
