"""The library without a query (``Library.browse``, ``GET /api/items``): newest first, paged by position."""

from __future__ import annotations

import os
import shutil

import pytest
from library_helpers import photo_sources

from polymodal.errors import InputError
from polymodal.library import Library


def test_pages_walk_the_library_newest_first_without_skipping_shared_dates(tmp_path, lite_encoder):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (name, src) in enumerate(sorted(photo_sources().items())):
        shutil.copy(src, folder / f"{name}{src.suffix}")
        # four photos share one date (a folder copied at once, no EXIF date), the rest are older, one each
        t = 1_700_000_000 if i < 4 else 1_600_000_000 - i * 86_400
        os.utime(folder / f"{name}{src.suffix}", (t, t))
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([folder])
    seen, cursor, pages = [], None, 0
    while True:
        hits, cursor = lib.browse(k=3, cursor=cursor)
        pages += 1
        seen += hits
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 8 == len({h.id for h in seen})  # every item once: none skipped at a page edge
    dates = [h.date for h in seen]
    assert dates == sorted(dates, reverse=True)
    everything, last = lib.browse(k=100)
    assert [h.id for h in everything] == [h.id for h in seen] and last is None
    assert lib.browse(k=5, kind="video") == ([], None)
    with pytest.raises(InputError, match="cursor"):
        lib.browse(cursor="yesterday|abc")
