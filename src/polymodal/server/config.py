"""What a server is allowed to do, decided once at start-up: address, token, limits, roots, generator."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from polymodal.errors import ServerConfigError

#: uploads larger than this are refused before they are decoded (a phone photo is 3-12 MB)
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
#: and images with more pixels than this (a 50 MP camera is 50e6); Pillow's own bomb limit is higher
MAX_UPLOAD_PIXELS = 64_000_000


@dataclass(frozen=True)
class ServerConfig:
    library: Path | None = None  # None: the default library (see Library.open)
    host: str = "127.0.0.1"  # the address uvicorn binds; also what the Host header must name
    port: int = 8000
    token: str | None = None  # required on every request when set; mandatory off loopback
    allowed_hosts: tuple[str, ...] = ()  # extra names the Host header may carry (a reverse proxy's name)
    cors_origins: tuple[str, ...] = ()  # CORS stays off unless origins are named
    index_roots: tuple[Path, ...] = ()  # folders index jobs may scan, besides those the library already holds
    generator: str | None = None  # a generator spec for /v1/images/generations; None: generation is off
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_upload_pixels: int = MAX_UPLOAD_PIXELS
    model: str | None = None  # the model of a new library (an existing one keeps its own)
    runtime: str | None = None  # torch or onnx (load_model's default: onnx on CPU)
    precision: str | None = None  # fp32 or int8 (onnx only)
    # index jobs in a thread of the server (shares the loaded encoder) instead of a lower-priority child
    # process (loads its own; searches keep their latency, see indexproc.py)
    index_in_process: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def check(self) -> ServerConfig:
        """Refuse a configuration that would expose the library to the network without a token."""
        if not 0 <= self.port < 65536:
            raise ServerConfigError(f"--port must be 0-65535, got {self.port}")
        if not is_loopback(self.host) and not self.token:
            raise ServerConfigError(
                f"refusing to serve on {self.host}, which other machines can reach, without a token: "
                "pass --token (or set POLYMODAL_SERVER_TOKEN), or bind --host 127.0.0.1"
            )
        if self.token is not None and len(self.token) < 16:
            raise ServerConfigError("the token is shorter than 16 characters; use e.g. `python -c "
                                    "\"import secrets; print(secrets.token_urlsafe(24))\"`")
        return self


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) can only be reached from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
