"""The original file of an item, found only through the library's own records and checked before reading.

A request names an item id, never a path. The path comes from the library; it is then resolved (symlinks
followed) and must still lie under one of the folders the library indexed, and the bytes read must hash to
the item's id, so a file swapped or re-linked after indexing (to /etc/passwd, say) is refused, not served.
Videos are served in byte ranges (HTTP Range), which browsers need to seek, from the one verified descriptor.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from polymodal.errors import AccessDeniedError, InputError, NotFoundError

_ITEM_ID = re.compile(r"^[0-9a-f]{16}$")
#: originals larger than this are not served (each is hashed once before its first byte is sent)
MAX_ORIGINAL_BYTES = 8 * 1024 ** 3


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


@dataclass
class Original:
    """An item's file, opened and verified: read it through ``fd`` (never reopened by path)."""

    fd: int
    size: int
    media: str
    name: str

    def read(self, start: int = 0, end: int | None = None, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (inclusive; default the last), in chunks; closes the file when done."""
        try:
            pos, last = start, self.size - 1 if end is None else end
            while pos <= last:
                data = os.pread(self.fd, min(chunk, last - pos + 1), pos)
                if not data:
                    break  # truncated since it was opened: stop rather than spin
                pos += len(data)
                yield data
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


#: (real path, device, inode, size, mtime ns) -> item id its bytes hashed to; a video is hashed once, not on
#: every range request a player makes while seeking. Any change to the file changes the key.
_VERIFIED: OrderedDict[tuple[str, int, int, int, int], str] = OrderedDict()
_VERIFIED_MAX = 256


def _hash_fd(fd: int, size: int) -> str:
    from polymodal.library.ingest import item_id as id_of

    h = hashlib.blake2b(digest_size=16)  # the digest ingest.content_hash gives for the same bytes
    pos = 0
    while pos < size:
        data = os.pread(fd, 1 << 20, pos)
        if not data:
            break
        h.update(data)
        pos += len(data)
    return id_of(h.hexdigest())


def open_original(item_id: str, paths: tuple[str, ...], roots: list[str]) -> Original:
    """The first of ``paths`` that is inside ``roots`` and still holds the item, opened for reading."""
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
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ORIGINAL_BYTES:
            os.close(fd)
            reasons.append("not a regular file of servable size")
            continue
        key = (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        found = _VERIFIED.get(key) or _hash_fd(fd, st.st_size)
        if found != item_id:
            os.close(fd)
            reasons.append("changed since it was indexed")
            continue
        _VERIFIED[key] = found
        _VERIFIED.move_to_end(key)
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
        return Original(fd, st.st_size, mimetypes.guess_type(real)[0] or "application/octet-stream", Path(path).name)
    if "outside the library's folders" in reasons:
        raise AccessDeniedError(f"item {item_id}: its file is outside the folders the library indexed")
    raise NotFoundError(f"item {item_id}: no readable file holds it any more ({', '.join(sorted(set(reasons)))}); "
                        "re-index its folder")


def read_original(item_id: str, paths: tuple[str, ...], roots: list[str]) -> tuple[bytes, str, str]:
    """(bytes, media type, file name) of the item's file, whole (see ``open_original``)."""
    orig = open_original(item_id, paths, roots)
    return b"".join(orig.read()), orig.media, orig.name


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last) a ``Range: bytes=...`` header asks of a ``size``-byte file.

    None: no header, or one this server answers with the whole file (several ranges, another unit), which
    RFC 9110 allows. A range that lies outside the file raises RangeNotSatisfiable (HTTP 416).
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        suffix = first == ""  # "-N": the last N bytes
        a = int(last) if suffix else int(first)
        b = size - 1 if suffix or not last else int(last)
    except ValueError:
        return None  # malformed: ignored, as RFC 9110 says
    if suffix:
        if a <= 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - a), size - 1
    if a >= size:
        raise RangeNotSatisfiable(size)
    if b < a:
        return None
    return a, min(b, size - 1)


class RangeNotSatisfiable(InputError):
    """A byte range past the end of the file (answered 416 with the file's size)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the requested byte range is outside the file ({size} bytes)")
        self.size = size
