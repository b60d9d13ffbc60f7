"""Object storage: sources (``s3://bucket/prefix``, ``gs://bucket/prefix``) and the library's tables on a bucket.

Files in a bucket are listed and read through pyarrow's filesystems, the same ones Ray Data uses, so a source
reads the same way in the local indexer and in a Ray task. Credentials come from the environment, never from
polymodal's config: the AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, a profile or an instance role) and ``AWS_ENDPOINT_URL`` for an
S3-compatible server (MinIO, Ceph, moto); Google's application default credentials for ``gs://``.

A remote file's key in the library is its URL; its size and modification time come from the listing, so a
re-scan of a bucket reads only the objects that changed, as on a local disk.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from polymodal.errors import InputError, MissingDependencyError

#: URL schemes read through pyarrow.fs
SCHEMES = ("s3", "gs")
REMOTE_PREFIXES = tuple(f"{s}://".encode() for s in SCHEMES)


def is_remote(path: str | bytes | os.PathLike[str]) -> bool:
    raw = path if isinstance(path, bytes) else os.fspath(path).encode("utf-8", "surrogateescape")
    return raw.startswith(REMOTE_PREFIXES)


def _endpoint() -> str | None:
    # AWS_ENDPOINT_URL_S3 is the service-specific form the AWS SDKs give precedence to
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def split_url(url: str) -> tuple[str, str]:
    """(scheme, ``bucket/key`` as pyarrow names it); an unknown scheme or a URL with no bucket is an error."""
    parsed = urlparse(url)
    if parsed.scheme not in SCHEMES:
        raise InputError(f"{url}: unsupported storage scheme {parsed.scheme!r}; use one of "
                         f"{', '.join(s + '://' for s in SCHEMES)} or a local path")
    if not parsed.netloc:
        raise InputError(f"{url}: no bucket name; write {parsed.scheme}://BUCKET/PREFIX")
    return parsed.scheme, (parsed.netloc + parsed.path).rstrip("/")


_FILESYSTEMS: dict[tuple[str, str | None, str | None], Any] = {}


def filesystem(scheme: str) -> Any:
    """A pyarrow filesystem for ``scheme``, configured from the environment as it is now."""
    try:
        import pyarrow.fs as pafs
    except ImportError:
        raise MissingDependencyError("pyarrow", "object storage") from None
    key = (scheme, _endpoint(), _region())  # keyed on the environment: a test or a job may point elsewhere
    fs = _FILESYSTEMS.get(key)
    if fs is None:
        if scheme == "s3":
            endpoint = key[1]
            kwargs: dict[str, Any] = {"region": key[2]} if key[2] else {}
            if endpoint:
                parsed = urlparse(endpoint)
                kwargs["endpoint_override"] = parsed.netloc or parsed.path
                kwargs["scheme"] = parsed.scheme or "https"
            fs = pafs.S3FileSystem(**kwargs)
        else:
            fs = pafs.GcsFileSystem()
        _FILESYSTEMS[key] = fs
    return fs


def _oserror(url: str, exc: Exception) -> OSError:
    """pyarrow's error as the OSError the indexer records for a local file (permission, vanished, other)."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError) or "NoSuchKey" in text or "does not exist" in text.lower():
        return FileNotFoundError(2, "no such object", url)
    if "ACCESS_DENIED" in text or "AccessDenied" in text or "Forbidden" in text:
        return PermissionError(13, "access denied", url)
    return OSError(5, text.splitlines()[0] if text else type(exc).__name__, url)


def read_bytes(url: str) -> bytes:
    """The whole object; OSError (FileNotFoundError, PermissionError) when it cannot be read."""
    scheme, path = split_url(url)
    try:
        with filesystem(scheme).open_input_stream(path) as fh:
            return bytes(fh.read())
    except OSError as exc:
        raise _oserror(url, exc) from None


def check_root(url: str) -> str:
    """The URL of a source, normalised, once it is known to exist: a bucket, a prefix or one object."""
    import pyarrow.fs as pafs

    scheme, path = split_url(url)
    try:
        info = filesystem(scheme).get_file_info(path)
    except OSError as exc:
        raise InputError(f"cannot index {url}: {_oserror(url, exc).strerror}") from None
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"cannot index {url}: no such bucket, prefix or object")
    return f"{scheme}://{path}"


def list_files(url: str, extensions: frozenset[str]) -> tuple[list[tuple[str, int, int]], list[tuple[str, str]]]:
    """(files, problems) under a source URL: each file as (url, size, mtime_ns), sorted by URL.

    Like the local walk: only wanted extensions, hidden names (a component starting with ``.``) skipped, an
    object given directly taken whatever its name. A listing that fails is one problem naming the source.
    """
    import pyarrow.fs as pafs

    scheme, path = split_url(url)
    fs = filesystem(scheme)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            infos = [info]
        else:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    except OSError as exc:
        return [], [(f"{scheme}://{path}", f"cannot list: {_oserror(url, exc).strerror}")]
    files = []
    for i in infos:
        if i.type != pafs.FileType.File:
            continue
        rel = i.path[len(path):].lstrip("/")
        if info.type != pafs.FileType.File:
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            if os.path.splitext(i.path)[1].lower() not in extensions:
                continue
        files.append((f"{scheme}://{i.path}", int(i.size or 0), int(i.mtime_ns or 0)))
    files.sort()
    return files, []


def storage_options(uri: str) -> dict[str, str]:
    """LanceDB/Lance ``storage_options`` for a library on ``uri``, from the same environment as the sources.

    Lance's object_store reads the AWS variables itself, but not ``AWS_ENDPOINT_URL`` with a plain-HTTP
    endpoint (it refuses ``http://`` unless told to allow it), so the endpoint is passed explicitly.
    """
    if not uri.startswith("s3://"):
        return {}
    out: dict[str, str] = {}
    for env, option in (("AWS_ACCESS_KEY_ID", "aws_access_key_id"), ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
                        ("AWS_SESSION_TOKEN", "aws_session_token")):
        if os.environ.get(env):
            out[option] = os.environ[env]
    if _region():
        out["aws_region"] = str(_region())
    endpoint = _endpoint()
    if endpoint:
        out["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            out["allow_http"] = "true"
    return out
