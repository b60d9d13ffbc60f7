"""Originals in byte ranges (what a video player needs to seek) and segment thumbnails by id only."""

from __future__ import annotations

import pytest
from server_helpers import ids_by_name

from polymodal.server.files import RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(("header", "want"), [
    (None, None), ("bytes=0-9", (0, 9)), ("bytes=10-", (10, 99)), ("bytes=-5", (95, 99)),
    ("bytes=90-500", (90, 99)), ("bytes=-500", (0, 99)), ("bytes=0-0", (0, 0)),
    ("bytes=0-9,20-29", None), ("items=0-9", None), ("bytes=9-3", None), ("bytes=x-y", None), ("bytes=5", None),
])
def test_parse_range(header, want):
    assert parse_range(header, 100) == want


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def test_original_in_ranges(client, served_library, photos):
    item = ids_by_name(client)["rocket"]
    data = photos["rocket"].read_bytes()
    whole = client.get(f"/api/items/{item}/original")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes" and int(whole.headers["content-length"]) == len(data)
    part = client.get(f"/api/items/{item}/original", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert part.headers["content-type"] == "image/jpeg"
    tail = client.get(f"/api/items/{item}/original", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    past = client.get(f"/api/items/{item}/original", headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
    assert past.json()["error"]["code"] == "range_not_satisfiable"
    several = client.get(f"/api/items/{item}/original", headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == data


def test_segment_thumbnails_only_by_ids(client):
    item = ids_by_name(client)["cat"]
    assert client.get(f"/api/items/{item}/segments/v0000/thumbnail").status_code == 404  # a photo has none
    for bad in ("..%2F..%2Fetc%2Fpasswd", "v0000%00", "a" * 40, "v0000;drop"):
        r = client.get(f"/api/items/{item}/segments/{bad}/thumbnail")
        assert r.status_code in (400, 404) and "image/webp" not in r.headers.get("content-type", "")
    assert client.get("/api/items/0123456789abcdef/segments/v0000/thumbnail").status_code == 404
