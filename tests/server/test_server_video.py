"""Video moments through the server: the same hits as `polymodal search --json`, segment thumbnails, the
original in byte ranges, and in a real browser a player that starts at the moment."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect
from server_helpers import LiveServer, app_for

from media_factory import Scene, make_video, photo

CUTS = (2.0, 4.0)  # cat | coffee | rocket


@pytest.fixture(scope="module")
def video_library(tmp_path_factory, lite):
    """A 6 s video of three photos cut at 2 s and 4 s, beside two photos, indexed with the offline model."""
    from polymodal.library import Library

    root = tmp_path_factory.mktemp("served-video")
    folder = root / "media"
    folder.mkdir()
    make_video(folder / "scenes.mp4", [Scene("cat", 2), Scene("coffee", 2), Scene("rocket", 2)], fps=8,
               size=(160, 120))
    for name in ("astronaut", "horse"):
        shutil.copy(photo(name), folder / photo(name).name)
    lib = Library.open(root / "lib", model=lite)
    lib.media_options = type(lib.media_options)(speech=False)  # the picture is what these tests look at
    report = lib.add([folder])
    assert report.added == 3 and not report.failures, report
    return lib, folder


@pytest.fixture(scope="module")
def app(video_library):
    """In place of conftest's app (the photos' library) for this module: `client` is then the video library's."""
    return app_for(video_library[0])


def test_moments_in_search_hits_are_the_cli_hits(client, video_library, capsys):
    import json

    from polymodal.cli import main

    lib, _ = video_library
    served = client.get("/api/search", params={"all": "true", "q": "a cup of coffee", "k": 4}).json()["hits"]
    assert main(["search", "a cup of coffee", "-k", "4", "--json", "--all", "--library", str(lib.root)]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert [h["id"] for h in served] == [h["id"] for h in cli]
    for s, c in zip(served, cli):
        assert s.pop("score") == pytest.approx(c.pop("score"), abs=1e-4)
        assert s == c
    top = served[0]
    assert top["kind"] == "video" and top["path"].endswith("scenes.mp4")
    assert abs(top["start"] - CUTS[0]) <= 1.0 and abs(top["end"] - CUTS[1]) <= 1.0, top
    assert top["segment"]
    # the same through the form (POST) endpoint and with the fusion/modality options
    form = client.post("/api/search", data={"all": "true", "q": "a cup of coffee", "k": "4",
                                            "modality": "visual"}).json()["hits"]
    assert form[0]["id"] == top["id"] and form[0]["start"] == pytest.approx(top["start"])
    assert client.get("/api/search", params={"all": "true", "q": "x", "fusion": "max"}).status_code == 400


def test_segment_thumbnail_and_the_video_in_ranges(client, video_library):
    lib, folder = video_library
    top = client.get("/api/search", params={"all": "true", "q": "a cup of coffee", "k": 1}).json()["hits"][0]
    thumb = client.get(f"/api/items/{top['id']}/segments/{top['segment']}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert thumb.content == lib.segment_thumbnail(top["id"], top["segment"])
    assert thumb.content[:4] == b"RIFF" and thumb.content[8:12] == b"WEBP"
    data = (folder / "scenes.mp4").read_bytes()
    part = client.get(f"/api/items/{top['id']}/original", headers={"Range": "bytes=0-1023"})
    assert part.status_code == 206 and part.headers["content-type"] == "video/mp4" and part.content == data[:1024]
    assert part.headers["content-range"] == f"bytes 0-1023/{len(data)}"


@pytest.fixture(scope="module")
def vlive(app):
    with LiveServer(app) as server:
        yield server


def test_a_moment_plays_from_its_start_in_chromium(vlive, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(vlive.url + "/")
    expect(page.locator("#version")).to_contain_text("polymodal ")
    page.keyboard.type("a cup of coffee")
    page.keyboard.press("Enter")
    card = page.locator("#grid li.card").first
    expect(card).to_have_class("card moment")
    hits = page.request.get(vlive.url + "/api/search?q=a%20cup%20of%20coffee&k=1").json()["hits"]
    start, end = hits[0]["start"], hits[0]["end"]
    assert abs(start - CUTS[0]) <= 1.0
    assert card.locator(".range").inner_text() == f"0:{start:04.1f}–0:{end:04.1f}"
    assert "/segments/" in card.locator("img").get_attribute("src")
    card.locator("button.play").click()
    video = card.locator("video.moment-player")
    expect(video).to_have_count(1)
    for _ in range(200):  # (polled from Python: the page's CSP forbids wait_for_function's eval)
        if video.evaluate("v => v.readyState >= 1 || v.error !== null"):
            break
        page.wait_for_timeout(50)
    assert video.evaluate("v => v.error && v.error.code") is None, "chromium could not load the video"
    t = video.evaluate("v => v.currentTime")
    assert abs(t - start) <= 1.0, (t, start, end)
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    from test_server_browser import ARGS, CHROMIUM

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_cli_moments_through_the_server(vlive, video_library, capsys, tmp_path):
    import io
    import json
    from pathlib import Path

    from PIL import Image

    from polymodal.cli import main

    lib, _ = video_library
    out = []
    for name, where in (("local", ["--library", str(lib.root)]), ("remote", ["--server", vlive.url])):
        assert main(["search", "a cup of coffee", "--modality", "visual", "--fusion", "rrf", "-k", "3", "--json",
                     "--all",
                     "--thumbnails", str(tmp_path / name), *where]) == 0
        out.append(json.loads(capsys.readouterr().out))
    local, remote = out
    assert [h["id"] for h in remote] == [h["id"] for h in local]
    assert [(h["start"], h["end"], h["segment"]) for h in remote] == [(h["start"], h["end"], h["segment"])
                                                                      for h in local]
    assert remote[0]["start"] is not None
    # --thumbnails: a moment's is its segment's, a photo's its own, the same bytes whoever answers
    assert {h["kind"] for h in local} == {"video", "image"}
    for a, b in zip(local, remote):
        data = Path(a["thumbnail"]).read_bytes()
        assert Path(b["thumbnail"]).read_bytes() == data and Path(a["thumbnail"]).parent == tmp_path / "local"
        want = lib.segment_thumbnail(a["id"], a["segment"]) if a["segment"] else lib.thumbnail(a["id"])
        assert data == want
        assert Image.open(io.BytesIO(data)).format == "WEBP"
