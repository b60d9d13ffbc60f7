"""The original file of an item, found only through the library's own records and checked before reading.

A request names an item id, never a path. The path comes from the library; it is then resolved (symlinks
followed) and must still lie under one of the folders the library indexed, and the bytes read must hash to
the item's id, so a file swapped or re-linked after indexing (to /etc/passwd, say) is refused, not served.
"""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path

from polymodal.errors import AccessDeniedError, InputError, NotFoundError

_ITEM_ID = re.compile(r"^[0-9a-f]{16}$")
#: originals larger than this are not served (they would be read whole to check their hash)
MAX_ORIGINAL_BYTES = 512 * 1024 * 1024


def check_item_id(item_id: str) -> str:
    """Item ids are 16 hex digits (a content-hash prefix); anything else, a path included, is refused."""
    if not _ITEM_ID.match(item_id):
        raise InputError(f"{item_id[:40]!r} is not an item id (16 hexadecimal digits)")
    return item_id


def library_roots(lib: object) -> list[str]:
    """Folders the library was indexed from (the roots of its jobs), resolved."""
    store = lib.store  # type: ignore[attr-defined]
    data = store.scan(store.jobs(), ["roots"])
    roots = {r for row in data.column("roots").to_pylist() for r in (row or [])} if data.num_rows else set()
    return sorted(os.path.realpath(r) for r in roots)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def read_original(item_id: str, paths: tuple[str, ...], roots: list[str]) -> tuple[bytes, str, str]:
    """(bytes, media type, file name) of the first of ``paths`` that is inside ``roots`` and still the item."""
    from polymodal.library.ingest import content_hash
    from polymodal.library.ingest import item_id as id_of

    reasons = []
    for path in paths:
        real = os.path.realpath(path)
        if not any(_under(real, r) for r in roots):
            reasons.append("outside the library's folders")
            continue
        try:
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            reasons.append("gone or unreadable")
            continue
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            import stat

            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ORIGINAL_BYTES:
                reasons.append("not a regular file of servable size")
                continue
            data = fh.read()
        if id_of(content_hash(data)) != item_id:
            reasons.append("changed since it was indexed")
            continue
        media = mimetypes.guess_type(real)[0] or "application/octet-stream"
        return data, media, Path(path).name
    if "outside the library's folders" in reasons:
        raise AccessDeniedError(f"item {item_id}: its file is outside the folders the library indexed")
    raise NotFoundError(f"item {item_id}: no readable file holds it any more ({', '.join(sorted(set(reasons)))}); "
                        "re-index its folder")
