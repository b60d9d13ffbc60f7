"""Finding media files under the given roots, without reading them.

The walk follows symlinks to files and to directories, remembering each directory's (device, inode) so a
symlink loop is reported once instead of walked forever. Anything that cannot be listed or stat'ed becomes
a ``Problem`` with a reason; the walk itself never raises for one bad entry.

A symlink whose target lies outside every root is not followed but recorded as a problem: a folder someone
else filled (a download, a shared drive) could otherwise point ``photo.jpg`` at a private file and have its
thumbnail stored and served. To include such a folder, index it as a root of its own (docs/reliability.md).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from polymodal.errors import InputError
from polymodal.library.remote import REMOTE_PREFIXES
from polymodal.media.raw import RAW_EXTENSIONS

#: extensions indexed as images: what Pillow reads, HEIC/HEIF (pillow-heif) and camera RAW (rawpy); AVIF is
#: added by ``image_extensions`` where Pillow was built with libavif (its wheels are, from 11.3)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff",
                              ".heic", ".heif"}) | RAW_EXTENSIONS
#: the largest file taken as an image: the pixel limit (89 MP) at 16 bits per RGBA channel is ~720 MB
#: uncompressed, and the indexer reads a file whole, so anything bigger is refused before it is read
MAX_IMAGE_FILE_BYTES = 1 << 30


def image_extensions() -> frozenset[str]:
    """The image extensions this installation can decode: the built-in set, plus AVIF when Pillow reads it."""
    try:
        from PIL import features

        if features.check("avif"):
            return IMAGE_EXTENSIONS | {".avif"}
    except Exception:  # noqa: BLE001 - an old Pillow without the feature registry just has no AVIF
        pass
    return IMAGE_EXTENSIONS


def display_path(raw: bytes) -> str:
    """A path as text: UTF-8 where it is, with undecodable bytes shown as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class FoundFile:
    path: str  # absolute, as text (see display_path); the library's key for this file
    raw: bytes  # the exact bytes of the path, to open it
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Problem:
    path: str
    raw: bytes
    reason: str


@dataclass
class ScanResult:
    files: list[FoundFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOENT:
        return "broken symlink (target does not exist)"
    return exc.strerror or str(exc)


def check_roots(roots: list[str | os.PathLike[str]]) -> list[bytes]:
    """Absolute byte paths of the roots; a root that does not exist is an error naming it."""
    from polymodal.library import remote

    out = []
    for root in roots:
        if remote.is_remote(root):
            out.append(remote.check_root(os.fspath(root)).encode())  # a bucket, prefix or object: see remote.py
            continue
        raw = os.fsencode(os.path.abspath(os.fspath(root)))
        if not os.path.exists(raw):
            why = "it is a broken symlink" if os.path.islink(raw) else "no such file or directory"
            raise InputError(f"cannot index {display_path(raw)}: {why}")
        out.append(raw)
    return out


def walk(roots: list[bytes], extensions: frozenset[str], exclude: bytes | None = None) -> ScanResult:
    """Every file with a wanted extension under ``roots`` (files given directly are taken whatever their name).

    ``exclude`` is a directory never descended into: the library itself, when it lives inside a scanned root.
    """
    result = ScanResult()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[bytes] = set()

    def add_file(raw: bytes, st: os.stat_result) -> None:
        ext = os.path.splitext(raw)[1].decode("ascii", "replace").lower()
        if st.st_size > MAX_IMAGE_FILE_BYTES and ext in IMAGE_EXTENSIONS | {".avif"}:
            problem(raw, f"too large for an image ({st.st_size / (1 << 30):.1f} GiB, limit "
                    f"{MAX_IMAGE_FILE_BYTES / (1 << 30):.0f} GiB)")
            return
        if raw not in seen_files:
            seen_files.add(raw)
            result.files.append(FoundFile(display_path(raw), raw, st.st_size, st.st_mtime_ns))

    def problem(raw: bytes, reason: str) -> None:
        result.problems.append(Problem(display_path(raw), raw, reason))

    def wanted(name: bytes) -> bool:
        return os.path.splitext(name)[1].decode("ascii", "replace").lower() in extensions

    real_roots = [os.path.realpath(r) for r in roots]

    def leaves_roots(raw: bytes) -> bytes | None:
        """The target of a symlink that resolves outside every root, else None."""
        target = os.path.realpath(raw)
        if any(target == r or target.startswith(r.rstrip(b"/") + b"/") for r in real_roots):
            return None
        return target

    stack: list[bytes] = []
    for root in roots:
        if root.startswith(REMOTE_PREFIXES):
            _walk_remote(root.decode(), extensions, result, seen_files)
            continue
        try:
            st = os.stat(root)
        except OSError as exc:
            problem(root, _reason(exc))
            continue
        if os.path.isdir(root):
            stack.append(root)
        else:
            add_file(root, st)
    while stack:
        directory = stack.pop()
        if exclude is not None and directory == exclude:
            continue
        try:
            st = os.stat(directory)
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                if os.path.islink(directory):
                    problem(directory, "symlink loop (directory already scanned)")
                continue
            seen_dirs.add(key)
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problem(directory, f"cannot list directory: {_reason(exc)}")
            continue
        subdirs = []
        for entry in entries:
            raw = os.path.join(directory, entry.name)
            if entry.name.startswith(b"."):
                continue  # hidden files and folders (.git, .thumbnails, the library's own .lock)
            if entry.is_symlink() and (target := leaves_roots(raw)) is not None:
                try:
                    os.stat(raw)
                except OSError as exc:  # dangling or a loop: "outside the indexed folders" would hide why
                    if wanted(entry.name):
                        problem(raw, _reason(exc))
                    continue
                if wanted(entry.name) or os.path.isdir(raw):
                    problem(raw, f"symlink to {display_path(target)}, outside the indexed folders: not followed")
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError as exc:
                problem(raw, _reason(exc))
                continue
            if is_dir:
                subdirs.append(raw)
                continue
            if not wanted(entry.name):
                continue
            try:
                st = entry.stat()  # follows symlinks
            except OSError as exc:
                problem(raw, _reason(exc))
                continue
            if not os.path.isfile(raw):
                continue  # fifos, sockets, devices
            add_file(raw, st)
        stack.extend(reversed(subdirs))
    return result


def _walk_remote(url: str, extensions: frozenset[str], result: ScanResult, seen: set[bytes]) -> None:
    from polymodal.library.remote import list_files

    files, problems = list_files(url, extensions)
    for path, size, mtime_ns in files:
        raw = path.encode()
        if raw not in seen:
            seen.add(raw)
            result.files.append(FoundFile(path, raw, size, mtime_ns))
    result.problems.extend(Problem(path, path.encode(), reason) for path, reason in problems)


def under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def as_root_text(root: bytes) -> str:
    return display_path(root)


def as_path(raw: bytes) -> Path:
    return Path(os.fsdecode(raw))
