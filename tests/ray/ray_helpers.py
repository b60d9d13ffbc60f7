"""Helpers for the Ray and object-storage tests: a photo set made from real photos, library comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: columns of ``items`` that must be identical between two builds of the same library (everything except
#: ``added``, the time of the run, and ``vector``, compared within a tolerance)
ITEM_COLUMNS = ["id", "hash", "kind", "paths", "size", "mtime", "width", "height", "taken", "date", "camera",
                "latitude", "longitude", "orientation", "tags", "thumbnail"]
FILE_COLUMNS = ["path", "size", "mtime_ns", "item_id", "error"]


def _exif(orientation: int, n: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = f"Canon EOS {n}D"
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = f"2019:07:{1 + n % 28:02d} 18:03:22"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, float(n % 60), 29.6)
    gps[3], gps[4] = "W", (2.0, 17.0, 40.2)
    return exif


def make_photos(folder: Path, sources: list[Path], n: int, seed: int = 0) -> list[Path]:
    """``n`` small distinct pictures cut from real photos: JPEGs (every fifth with EXIF date, camera, GPS and an
    orientation) and PNGs, in two sub-folders; plus one exact copy of the first under another name and one
    file that is not an image at all (the failure every run must record).
    """
    rng = np.random.default_rng(seed)
    pics = [Image.open(s).convert("RGB") for s in sources]
    out = []
    for i in range(n):
        src = pics[i % len(pics)]
        w, h = src.size
        cw, ch = int(rng.integers(w // 4, w // 2)), int(rng.integers(h // 4, h // 2))
        x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        side = int(rng.integers(48, 112))
        img = src.crop((x, y, x + cw, y + ch)).resize((side, max(8, side * ch // cw)))
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        if i % 3:
            path = sub / f"pic_{i:04d}.jpg"
            if i % 5 == 1:
                img.save(path, quality=85, exif=_exif(6 if i % 10 == 1 else 1, i))
            else:
                img.save(path, quality=85)
        else:
            path = sub / f"pic_{i:04d}.png"
            img.save(path)
        out.append(path)
    copy = folder / "b" / "copy_of_first.jpg"
    copy.write_bytes(out[0].read_bytes())
    (folder / "a" / "broken.jpg").write_bytes(b"this is not a jpeg")
    return out


def table(lib: Any, name: str, columns: list[str], key: str) -> list[dict[str, Any]]:
    store = lib.store
    t = store.items() if name == "items" else store.files()
    rows = store.scan(t, columns).to_pylist()
    return sorted(rows, key=lambda r: r[key])


def vectors(lib: Any) -> dict[str, np.ndarray]:
    ids, vecs = lib.store.vectors()
    return dict(zip(ids, vecs))


def assert_same_library(a: Any, b: Any, *, path_map: Any = None, tol: float = 1e-4) -> None:
    """Same items (ids, metadata, thumbnails), same files and failures, embeddings equal within ``tol``.

    ``path_map`` turns a path of ``a`` into the path the same file has in ``b`` (a bucket URL for a local path).
    """
    pm = path_map or (lambda p: p)
    items_a, items_b = table(a, "items", ITEM_COLUMNS, "id"), table(b, "items", ITEM_COLUMNS, "id")
    assert [r["id"] for r in items_a] == [r["id"] for r in items_b]
    for ra, rb in zip(items_a, items_b):
        ra = {**ra, "paths": sorted(pm(p) for p in ra["paths"])}
        if path_map is not None:  # a bucket keeps its own modification times
            for col in ("mtime", "date"):
                ra.pop(col)
                rb.pop(col)
        assert ra == rb, ra["id"]
    files_a = sorted(({**r, "path": pm(r["path"])} for r in table(a, "files", FILE_COLUMNS, "path")),
                     key=lambda r: r["path"])
    files_b = table(b, "files", FILE_COLUMNS, "path")
    if path_map is not None:
        files_a = [{k: v for k, v in r.items() if k != "mtime_ns"} for r in files_a]
        files_b = [{k: v for k, v in r.items() if k != "mtime_ns"} for r in files_b]
    assert files_a == files_b
    va, vb = vectors(a), vectors(b)
    assert va.keys() == vb.keys()
    diff = max(float(np.abs(va[i] - vb[i]).max()) for i in va)
    assert diff < tol, diff
