"""``--server URL``: ``search``, ``similar``, ``status`` and ``classify`` answered by a running ``polymodal serve``.

The server keeps its model loaded, so a query costs a round trip instead of a model load. Query terms are
parsed here, on the user's machine, exactly as a local search parses them (``"2:sunset"``, a term naming a
local image file is that image); images are uploaded, texts go as texts, and the hits come back as the same
``Hit`` objects a local library returns, so ``--json`` prints the same thing either way.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from polymodal.cli.common import hit_filters
from polymodal.errors import InputError

if TYPE_CHECKING:  # every library command imports this module to register --server: keep it light
    from polymodal.library.types import Hit


def add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", metavar="URL", default=None,
                   help="ask a running `polymodal serve` at URL instead of loading the model here "
                   "(default: $POLYMODAL_SERVER)")
    p.add_argument("--token", default=None, help="the server's token (default: $POLYMODAL_TOKEN); the variable "
                   "keeps it out of the process list")


def server_client(args: argparse.Namespace) -> Any:
    """A ServerClient when ``--server`` or ``POLYMODAL_SERVER`` names one, else None (answer locally)."""
    url = getattr(args, "server", None) or os.environ.get("POLYMODAL_SERVER") or None
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise InputError(f"--server {url!r}: give the server's URL, e.g. http://127.0.0.1:8000")
    for flag, value in (("--library", getattr(args, "library", None)), ("--model", getattr(args, "model", None))):
        if value:
            raise InputError(f"{flag} cannot be used with --server: the server answers from its own library "
                             "and model (leave --server out, or unset POLYMODAL_SERVER, to search locally)")
    from polymodal.server.client import ServerClient

    return ServerClient(url, token=getattr(args, "token", None) or None)


def _text(term: Any) -> str:
    # always with its weight: the server parses "W:TEXT", so a text that itself starts with "3:" stays intact
    return f"{term.weight:g}:{term.text}"


def search(client: Any, args: argparse.Namespace) -> list[Hit]:
    from polymodal.library.query import build_terms

    terms = build_terms(args.query, args.negative, args.image)
    texts = [_text(t) for t in terms if t.text is not None and t.weight > 0]
    negative = [_text(t)[1:] for t in terms if t.text is not None and t.weight < 0]  # drop the minus sign
    images = [t.image for t in terms if t.text is None and t.weight > 0]
    negative_images = [t.image for t in terms if t.text is None and t.weight < 0]
    if any(abs(t.weight) != 1 for t in terms if t.text is None):
        raise InputError("weighted image terms (W:IMAGE) need a local search; leave out --server or the weight")
    return list(client.search(texts, images or None, negative=negative, negative_images=negative_images,
                              exact=args.exact, fusion=getattr(args, "fusion", "weighted"),
                              modality=getattr(args, "modality", None), floor=not args.all_hits,
                              box=getattr(args, "box", None),
                              **hit_filters(args)))


def similar(client: Any, args: argparse.Namespace) -> list[Hit]:
    """An item id is asked for as is; a local image file is uploaded (and, as locally, not among its own
    results when the library holds it)."""
    item = args.item
    filters = hit_filters(args)
    if not os.path.isfile(item):
        return list(client.similar(item, **filters))
    own = os.path.abspath(os.path.expanduser(item))
    filters["k"] = args.k + 1
    hits = [h for h in client.search(image=item, **filters) if own not in (h.paths or (h.path,))]
    return hits[: args.k]


def classify(client: Any, args: argparse.Namespace, labels: list[str]) -> list[Any]:
    """Zero-shot labels from the server's model; the images are uploaded, the output is the local one."""
    bad = [lbl for lbl in labels if "," in lbl]
    if bad:
        raise InputError(f"label {bad[0]!r} holds a comma, which the server reads as two labels; drop --server")
    if args.templates not in ("openai", "simple"):
        raise InputError("--templates FILE needs a local classify: the server takes openai or simple")
    for path in args.images:
        if not os.path.isfile(path):
            raise InputError(f"{path} is not an image file")
    return list(client.classify(args.images, labels, templates=args.templates, top=args.top))


def thumbnail_fetcher(client: Any) -> Any:
    """For ``--thumbnails``: a hit's thumbnail from the server, None when it has none (audio)."""
    from polymodal.errors import NotFoundError

    def fetch(hit: Hit) -> bytes | None:
        try:
            data: bytes = client.thumbnail(hit.id, hit.segment)
        except NotFoundError:
            return None
        return data

    return fetch
