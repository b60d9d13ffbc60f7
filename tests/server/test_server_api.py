"""The JSON API in-process: search (text, image, combined, negative, filters, pages), items, classify."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import ids_by_name


def test_health_version_status_and_openapi(client, lite):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.head("/health").status_code == 200
    v = client.get("/api/version").json()
    assert v["model"] == lite.name and v["dim"] == lite.dim and v["generator"] is None
    # what docs/server.md lists; the page once claimed (and a "video": false said) that video was not indexed
    assert set(v) == {"polymodal", "model", "dim", "runtimes", "generator"}
    assert v["runtimes"] == {"image": "onnx-fp32", "text": "onnx-fp32"}  # what each network actually runs on
    assert "video" not in client.get("/").text.split("<footer>")[1]
    st = client.get("/api/status").json()
    assert st["items"] == 6 and st["model"] == lite.name and st["runtimes"] == v["runtimes"]
    spec = client.get("/openapi.json").json()
    for path in ("/health", "/api/search", "/api/similar/{item_id}", "/api/items/{item_id}",
                 "/api/items/{item_id}/thumbnail", "/api/items/{item_id}/original", "/api/classify", "/api/jobs",
                 "/v1/embeddings", "/v1/images/generations"):
        assert path in spec["paths"], path
    # bad input is answered 400 with {"error": ...}, and the spec says so (FastAPI's default promises a 422)
    assert "HTTPValidationError" not in json.dumps(spec) and spec["components"]["schemas"]["Error"]
    search = spec["paths"]["/api/search"]["get"]["responses"]
    assert "422" not in search and search["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    bad = client.get("/api/search", params={"all": "true", "q": "a cat", "k": "many"})
    assert bad.status_code == 400 and set(bad.json()["error"]) == {"message", "type", "param", "code"}
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("query,expected", [("a cat", "cat"), ("a cup of coffee", "coffee"),
                                            ("a space rocket launch", "rocket"), ("flowers", "flower")])
def test_text_search_ranks_the_right_photo_first(client, query, expected):
    hits = client.get("/api/search", params={"all": "true", "q": query, "k": 3}).json()["hits"]
    assert len(hits) == 3
    assert Path(hits[0]["path"]).stem == expected
    assert hits[0]["score"] > hits[1]["score"] >= hits[2]["score"]


def test_hits_have_exactly_the_fields_of_search_json(client, served_library, tmp_path):
    lib, _ = served_library
    out = subprocess.run([sys.executable, "-m", "polymodal", "search", "a cat", "-k", "2", "--json", "--all",
                          "--library", str(lib.root)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "POLYMODAL_CONFIG": str(tmp_path / "none.toml")})
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    api = client.get("/api/search", params={"all": "true", "q": "a cat", "k": 2}).json()["hits"]
    assert [set(h) for h in api] == [set(h) for h in cli]
    assert [h["id"] for h in api] == [h["id"] for h in cli]
    assert api[0]["score"] == pytest.approx(cli[0]["score"], abs=1e-5)


def test_image_upload_search_finds_the_same_photo(client, photos):
    data = photos["rocket"].read_bytes()
    r = client.post("/api/search", files={"image": ("q.jpg", data, "image/jpeg")}, data={"k": "2"})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert Path(hits[0]["path"]).stem == "rocket" and hits[0]["score"] > 0.99


def test_a_heic_query_photo_is_searched_like_any_other(client, photos):
    """A phone's HEIC photo as the query (the uploads check once refused every HEIC as unreadable)."""
    import pillow_heif
    from PIL import Image

    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.open(photos["rocket"]).convert("RGB")).save(buf, quality=90)
    r = client.post("/api/search", files={"image": ("q.heic", buf.getvalue(), "image/heic")}, data={"k": "2"})
    assert r.status_code == 200, r.text
    assert Path(r.json()["hits"][0]["path"]).stem == "rocket"


def test_combined_and_negative_terms_change_the_ranking(client):
    base = client.get("/api/search", params={"all": "true", "q": "an animal", "k": 6}).json()["hits"]
    away = client.get("/api/search", params=[("all", "true"), ("q", "an animal"), ("not", "a cat"),
                                             ("k", "6")]).json()["hits"]
    rank = {h["id"]: i for i, h in enumerate(base)}
    rank_away = {h["id"]: i for i, h in enumerate(away)}
    cat = next(h["id"] for h in base if Path(h["path"]).stem == "cat")
    assert rank_away[cat] > rank[cat]
    weighted = client.get("/api/search", params=[("all", "true"), ("q", "3:a horse"),
                                                 ("q", "a cup of coffee")]).json()["hits"]
    assert Path(weighted[0]["path"]).stem == "horse"


def test_a_text_naming_a_file_is_searched_as_text_never_read(client, tmp_path, monkeypatch):
    # The library's own parser takes an existing path for an image; over HTTP that would read any file.
    secret = tmp_path / "secret.png"
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(secret)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **kw: opened.append(fp) or real_open(fp, *a, **kw))
    for q in (str(secret), f"2:{secret}"):
        r = client.get("/api/search", params={"all": "true", "q": q, "k": 1})
        assert r.status_code == 200
    assert not [p for p in opened if str(secret) in str(p)]


def test_the_relevance_floor_and_all_over_http(client, photos):
    assert client.get("/api/search", params={"q": "a red car", "k": 4}).json()["hits"] == []
    nearest = client.get("/api/search", params={"q": "a red car", "k": 4, "all": "true"}).json()["hits"]
    assert len(nearest) == 4 and all(0 < h["confidence"] < 0.3 for h in nearest)
    cat = client.get("/api/search", params={"q": "a cat", "k": 4}).json()["hits"]
    assert Path(cat[0]["path"]).stem == "cat" and cat[0]["confidence"] > 0.8 and len(cat) < 4
    form = client.post("/api/search", data={"q": "a red car", "k": "4", "all": "true"}).json()["hits"]
    assert [h["id"] for h in form] == [h["id"] for h in nearest]
    by_image = client.post("/api/search", files={"image": ("c.png", photos["cat"].read_bytes(), "image/png")},
                           data={"k": "3"}).json()["hits"]
    assert len(by_image) == 3 and all(h["confidence"] is None for h in by_image)  # no calibrated scale


def test_filters_and_pagination(client):
    all_hits = client.get("/api/search", params={"all": "true", "q": "a photo", "k": 6}).json()["hits"]
    page1 = client.get("/api/search", params={"all": "true", "q": "a photo", "k": 2}).json()
    page2 = client.get("/api/search", params={"all": "true", "q": "a photo", "k": 2, "offset": 2}).json()
    assert [h["id"] for h in page1["hits"] + page2["hits"]] == [h["id"] for h in all_hits[:4]]
    assert page1["next_offset"] == 2
    only_png = client.get("/api/search", params={"all": "true", "q": "a photo", "k": 6, "path": "*.jpg"}).json()["hits"]
    assert only_png and all(h["path"].endswith(".jpg") for h in only_png)
    after = client.get("/api/search",
                       params={"all": "true", "q": "a photo", "k": 6, "after": "2021-01-01"}).json()["hits"]
    assert 0 < len(after) < 6 and all(h["date"] >= "2021-01-01" for h in after)
    by_date = client.get("/api/search", params={"all": "true", "q": "a photo", "k": 6, "sort": "date"}).json()["hits"]
    dates = [h["date"] for h in by_date]
    assert dates == sorted(dates, reverse=True)  # newest first


@pytest.mark.parametrize("params,param", [({"q": "x", "k": 0}, None), ({"q": "x", "k": 5000}, None),
                                          ({"q": "x", "offset": -1}, None), ({}, None), ({"q": "x", "k": "many"}, "k"),
                                          ({"q": "x", "after": "yesterday"}, None), ({"q": "0:x"}, None)])
def test_bad_search_parameters_are_400_json_without_traceback(client, params, param):
    r = client.get("/api/search", params=params)
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert "Traceback" not in r.text and "File \"" not in r.text
    if param:
        assert err["param"] == param


def test_similar_item_thumbnail_and_original(client, photos):
    ids = ids_by_name(client)
    hits = client.get(f"/api/similar/{ids['cat']}", params={"k": 5}).json()["hits"]
    assert len(hits) == 5 and ids["cat"] not in [h["id"] for h in hits]
    item = client.get(f"/api/items/{ids['coffee']}").json()
    assert Path(item["path"]).stem == "coffee" and item["width"] > 0
    th = client.get(f"/api/items/{ids['coffee']}/thumbnail")
    assert th.status_code == 200 and th.headers["content-type"] == "image/webp" and th.content[8:12] == b"WEBP"
    orig = client.get(f"/api/items/{ids['rocket']}/original")
    assert orig.status_code == 200 and orig.content == photos["rocket"].read_bytes()
    assert orig.headers["content-type"] == "image/jpeg"
    assert client.get("/api/items/0123456789abcdef").status_code == 404
    assert client.get("/api/items/0123456789abcdef").json()["error"]["type"] == "not_found_error"


def test_classify_upload_and_library_item(client, photos):
    r = client.post("/api/classify", files={"image": ("c.png", photos["cat"].read_bytes(), "image/png")},
                    data={"labels": "a cat,a rocket,a cup of coffee"})
    assert r.status_code == 200, r.text
    labels = r.json()["results"][0]["labels"]
    assert labels[0]["label"] == "a cat" and sum(x["score"] for x in labels) == pytest.approx(1, abs=1e-4)
    ids = ids_by_name(client)
    r = client.post("/api/classify", data={"labels": ["a cat", "a rocket", "a cup of coffee"], "item": ids["coffee"]})
    assert r.json()["results"][0]["labels"][0]["label"] == "a cup of coffee"
    assert client.post("/api/classify", data={"labels": "a,a"}, files={"image": ("c.png", photos["cat"].read_bytes(),
                                                                                 "image/png")}).status_code == 400


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>polymodal</title>" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../app.py").status_code == 404
    assert page.headers["x-frame-options"] == "DENY" and "default-src 'self'" in page.headers["content-security-policy"]


def test_upload_bytes_are_not_decoded_when_not_an_image(client):
    r = client.post("/api/search", files={"image": ("x.png", io.BytesIO(b"not an image at all"), "image/png")})
    assert r.status_code == 400 and "not a readable image" in r.json()["error"]["message"]


def test_region_search_with_an_upload_or_a_library_item(client, photos):
    from polymodal.explain.pointing import compose_scene

    served = {"cat", "coffee", "rocket", "motorbike", "flower", "horse"}
    scene = compose_scene(2001, photos={n: p for n, p in photos.items() if n in served})
    buf = io.BytesIO()
    scene.image.save(buf, format="PNG")
    for obj in scene.objects:
        box = ",".join(str(v) for v in obj.box)
        hits = client.post("/api/search", files={"image": ("scene.png", buf.getvalue(), "image/png")},
                           data={"box": box, "k": "1"}).json()["hits"]
        assert Path(hits[0]["path"]).stem == obj.name
    # a library item as the picture, by id: a box around the top-left quarter of the coffee photo
    coffee = ids_by_name(client)["coffee"]
    by_item = client.post("/api/search", data={"item": coffee, "box": "0,0,300,200", "k": "2"}).json()["hits"]
    assert by_item[0]["id"] == coffee and by_item[0]["confidence"] is None
    bad = client.post("/api/search", data={"item": coffee, "box": "0,0,5000,200"})
    assert bad.status_code == 400 and "reaches outside" in bad.json()["error"]["message"]
    two = client.post("/api/search", files=[("image", ("a.png", buf.getvalue(), "image/png")),
                                            ("image", ("b.png", buf.getvalue(), "image/png"))], data={"box": "0,0,9,9"})
    assert two.status_code == 400 and "one picture" in two.json()["error"]["message"]


def test_a_spoken_query_over_http(client, tmp_path):
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent.parent))  # media_factory
    from media_factory import espeak, make_audio

    pad = np.zeros(8000, np.float32)
    audio = make_audio(tmp_path / "q.wav", np.concatenate([pad, espeak("a cup of coffee", rate=120), pad]))
    r = client.post("/api/search/voice", files={"audio": ("q.wav", audio.read_bytes(), "audio/wav")},
                    data={"k": "3"})
    body = r.json()
    assert r.status_code == 200 and "coffee" in body["transcript"], body
    assert Path(body["hits"][0]["path"]).stem == "coffee"
    silent = make_audio(tmp_path / "s.wav", np.zeros(32000, np.float32))
    r = client.post("/api/search/voice", files={"audio": ("s.wav", silent.read_bytes(), "audio/wav")})
    assert r.status_code == 400 and "no words were heard" in r.json()["error"]["message"]
    r = client.post("/api/search/voice", files={"audio": ("x.wav", b"not audio at all", "audio/wav")})
    assert r.status_code == 400 and "Traceback" not in r.text


def test_explain_an_item_or_an_upload_as_json_or_png(client, photos):
    from PIL import Image

    coffee = ids_by_name(client)["coffee"]
    found = client.post("/api/explain", data={"q": "a cup of coffee", "item": coffee}).json()
    width, height = Image.open(photos["coffee"]).size
    assert (found["width"], found["height"]) == (width, height) and len(found["box"]) == 4
    x0, y0, x1, y1 = found["box"]
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and found["grid"]
    png = client.post("/api/explain", data={"q": "a cup of coffee", "format": "png"},
                      files={"image": ("c.png", photos["coffee"].read_bytes(), "image/png")})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (width, height)
    assert client.post("/api/explain", data={"q": "a cup of coffee"}).status_code == 400  # no picture
    assert client.post("/api/explain", data={"q": " ", "item": coffee}).status_code == 400  # no words


def test_browse_the_library_page_by_page(client):
    first = client.get("/api/items", params={"k": 4}).json()
    assert len(first["hits"]) == 4 and first["next"]
    rest = client.get("/api/items", params={"k": 4, "cursor": first["next"]}).json()
    assert len(rest["hits"]) == 2 and rest["next"] is None
    dates = [h["date"] for h in first["hits"] + rest["hits"]]
    assert dates == sorted(dates, reverse=True)
    assert client.get("/api/items", params={"k": 0}).status_code == 400
