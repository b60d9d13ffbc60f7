"""How a generated image records how it was made, and how it is written without ever being half-written.

Each PNG carries its provenance in text chunks (``prompt``, ``negative_prompt``, ``seed``, ``model``,
``steps``, ``guidance``, ``score``, ``scorer``, the whole record as ``polymodal`` JSON, and an A1111-style
``parameters`` line that other image tools show), and a JSON sidecar beside it says the same. Nothing time-
dependent goes into the PNG, so a seed reproduces its bytes. Files are written to temporary names in the
output directory, synced, then renamed; any failure removes every file of the set.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
import shutil
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polymodal.errors import InputError, OutputSpaceError
from polymodal.generation.types import GeneratedImage

SIDECAR_FORMAT = 1  # bump when the sidecar's fields change meaning
#: PNG text chunks written, in order (each a string; absent values are written as "")
CHUNKS = ("prompt", "negative_prompt", "seed", "model", "steps", "guidance", "score", "scorer")
_SLACK = 1 << 20  # bytes left free beyond the files themselves (a filesystem needs some room for its records)


def _slug(text: str, limit: int = 40) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:limit].strip("-") or "image"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def png_bytes(image: GeneratedImage) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    meta = image.metadata()
    info = PngInfo()
    values = {**meta, "negative_prompt": meta["negative"]}
    for key in CHUNKS:
        info.add_itxt(key, _fmt(values.get(key)))
    info.add_itxt("polymodal", json.dumps(meta, ensure_ascii=False, sort_keys=True))
    params = [image.prompt]
    if image.negative:
        params.append(f"Negative prompt: {image.negative}")
    fields = [("Steps", image.steps), ("CFG scale", image.guidance), ("Seed", image.seed),
              ("Size", f"{image.width}x{image.height}"), ("Model", image.model), ("CLIPScore", round(image.score, 4))]
    params.append(", ".join(f"{k}: {v}" for k, v in fields if v is not None))
    info.add_itxt("parameters", "\n".join(params))
    buf = io.BytesIO()
    image.image.save(buf, format="PNG", pnginfo=info, compress_level=6)
    return buf.getvalue()


def sidecar_bytes(image: GeneratedImage, png_name: str) -> bytes:
    from polymodal import __version__

    record = {"format": SIDECAR_FORMAT, "image": png_name, **image.metadata(),
              "created": datetime.now(UTC).isoformat(timespec="seconds"), "polymodal": __version__}
    return (json.dumps(record, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The record a saved PNG carries (its ``polymodal`` chunk), or its plain chunks when that is absent."""
    from PIL import Image

    with Image.open(path) as im:
        text = dict(getattr(im, "text", {}) or {})
    if "polymodal" in text:
        return dict(json.loads(text["polymodal"]))
    return {k: v for k, v in text.items() if k in CHUNKS}


def prepare_out(out: str | os.PathLike[str]) -> Path:
    """Create the output directory (or refuse a file in its place) before any compute is spent."""
    root = Path(out).expanduser()
    if root.exists() and not root.is_dir():
        raise InputError(f"--out {root} is a file; give a directory to save images in")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputSpaceError(f"cannot create the output directory {root}: {exc.strerror}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise OutputSpaceError(f"cannot write to the output directory {root}: permission denied")
    return root


def check_space(root: Path, needed: int) -> None:
    free = shutil.disk_usage(root).free
    if free < needed + _SLACK:
        raise OutputSpaceError(
            f"not enough space in {root}: {free / 1e6:.1f} MB free, about {(needed + _SLACK) / 1e6:.1f} MB needed; "
            "free some space or give --out another directory"
        )


def _names(root: Path, image: GeneratedImage, taken: set[str]) -> tuple[Path, Path]:
    stem = _slug(image.prompt)
    stem += f"-{image.seed}" if image.seed is not None else f"-{datetime.now(UTC):%Y%m%d-%H%M%S}-{image.rank}"
    for i in range(10_000):
        name = stem if i == 0 else f"{stem}-{i + 1}"
        png, side = root / f"{name}.png", root / f"{name}.json"
        if name not in taken and not png.exists() and not side.exists():
            taken.add(name)
            return png, side
    raise OutputSpaceError(f"no free file name for {stem}.png in {root}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def save_images(images: list[GeneratedImage], out: str | os.PathLike[str]) -> None:
    """Write each image's PNG and sidecar into ``out``, all or nothing; sets ``path`` and ``sidecar``."""
    root = prepare_out(out)
    taken: set[str] = set()
    files: list[tuple[Path, bytes]] = []
    for image in images:
        png, side = _names(root, image, taken)
        files.append((png, png_bytes(image)))
        files.append((side, sidecar_bytes(image, png.name)))
    check_space(root, sum(len(data) for _, data in files))
    temps: list[str] = []
    placed: list[str] = []
    try:
        for final, data in files:
            # os.open with 0o666 lets the umask decide the mode, as for any file the user saves (mkstemp: 0600)
            tmp = str(root / f".{final.name}.{secrets.token_hex(4)}.part")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            temps.append(tmp)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        for (final, _), tmp in zip(files, temps):
            os.replace(tmp, final)
            placed.append(str(final))
    except OSError as exc:
        for path in [*temps, *placed]:
            try:
                os.unlink(path)
            except OSError:
                pass
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputSpaceError(f"no space left in {root} while saving; nothing was kept") from None
        raise OutputSpaceError(f"cannot write images to {root}: {exc.strerror or exc}; nothing was kept") from None
    _sync_dir(root)
    for i, image in enumerate(images):
        image.path, image.sidecar = files[2 * i][0], files[2 * i + 1][0]


def _sync_dir(root: Path) -> None:
    """Make the renames durable too (a crash right after would otherwise lose the directory entries)."""
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
