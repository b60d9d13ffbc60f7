"""The web page in a real browser: Debian's chromium driven by Playwright, against a live server on loopback.

.ci/run installs chromium, so a missing browser is a failure here, not a skip.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from playwright.sync_api import expect

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, live):
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone's screen
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.goto(live.url + "/")
    expect(pg.locator("#version")).to_contain_text("polymodal ")
    yield pg
    context.close()
    assert not errors, errors  # includes CSP violations


def _first_card_name(page) -> str:
    # the page opens on the library (newest first): wait for the search's own answer, not those cards
    expect(page.locator("#search-status")).to_contain_text("results for")
    page.wait_for_selector("#grid li.card")
    return page.locator("#grid li.card .path").first.inner_text().rsplit("/", 1)[-1]


def test_typing_a_query_shows_the_expected_photo_first(page):
    page.keyboard.type("a cup of coffee")  # the box has focus on load
    page.keyboard.press("Enter")
    assert _first_card_name(page) == "coffee.png"
    thumb = page.locator("#grid li.card img").first
    # (waits in Python: the page's CSP forbids the string eval behind wait_for_function)
    for _ in range(100):
        if thumb.evaluate("img => img.complete && img.naturalWidth"):
            break
        page.wait_for_timeout(50)
    assert thumb.evaluate("img => img.naturalWidth") > 0
    assert "/thumbnail" in thumb.get_attribute("src")
    assert page.locator("#grid li.card .score").first.inner_text().startswith("score 0.")
    assert page.locator("#grid li.card time").first.inner_text().startswith("20")
    # readable on a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_query_nothing_shows_says_so_and_the_switch_shows_the_nearest(page):
    page.keyboard.type("a red car")
    page.keyboard.press("Enter")
    expect(page.locator("#search-status")).to_contain_text("nothing stands out")
    assert page.locator("#grid li.card").count() == 0
    page.locator("#f-all").check()  # visible beside the box, and it searches again at once
    page.wait_for_selector("#grid li.card")
    assert page.locator("#grid li.card").count() >= 3
    sure = page.locator("#grid li.card .confidence").first.inner_text()
    assert sure.endswith("% sure") and int(sure.split("%")[0]) < 30  # weak matches say they are weak


def test_a_clear_match_shows_its_confidence_and_why(page):
    page.keyboard.type("a cat")
    page.keyboard.press("Enter")
    assert _first_card_name(page) == "cat.png"
    assert int(page.locator("#grid li.card .confidence").first.inner_text().split("%")[0]) >= 50
    first = page.locator("#grid li.card").first
    first.locator("button.why").click()  # the heatmap of where "a cat" matches, in place of the thumbnail
    expect(first.locator("button.why")).to_have_text("Hide why", timeout=60_000)
    assert first.locator("img").get_attribute("src").startswith("blob:")
    first.locator("button.why").click()
    assert "/thumbnail" in first.locator("img").get_attribute("src")


def test_dropping_an_image_searches_by_it(page, photos):
    data = base64.b64encode(photos["rocket"].read_bytes()).decode()
    page.evaluate("""async (b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "query.jpg", { type: "image/jpeg" }));
        document.querySelector("#drop-zone").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
    }""", data)
    expect(page.locator("#search-status")).to_contain_text("query.jpg")
    assert _first_card_name(page) == "rocket.jpg"


def test_more_like_this_and_keyboard_only_use(page):
    page.keyboard.type("a cat")
    page.keyboard.press("Enter")
    assert _first_card_name(page) == "cat.png"
    page.locator("#grid li.card button.similar").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#search-status")).to_contain_text("items like cat.png")
    names = page.locator("#grid li.card .path").all_inner_texts()
    assert names and not any(n.endswith("/cat.png") for n in names)


def test_classify_view(page, photos):
    page.get_by_role("button", name="Classify").click()
    page.set_input_files("#c-image", str(photos["cat"]))
    page.fill("#c-labels", "a cat, a rocket, a cup of coffee")
    page.get_by_role("button", name="Classify", exact=True).last.click()
    page.wait_for_selector("#classify-result li")
    assert page.locator("#classify-result li .label").first.inner_text() == "a cat"


def test_index_view_lists_jobs_and_roots(page):
    page.get_by_role("button", name="Index").click()
    expect(page.locator("#job-roots")).to_contain_text("may index")


def test_asking_by_voice_with_the_microphone(browser, live, tmp_path):
    """The microphone button records with MediaRecorder and the server transcribes: Chromium's fake microphone
    plays a WAV of "a cup of coffee" (espeak-ng), looped, in place of a person."""
    import sys

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent.parent))  # media_factory
    from media_factory import espeak, make_audio

    pad = np.zeros(16000, np.float32)
    wav = make_audio(tmp_path / "said.wav", np.concatenate([pad, espeak("a cup of coffee", rate=120), pad]))
    mic = [*ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
           f"--use-file-for-fake-audio-capture={wav}"]
    # a browser of its own (its microphone is the file), from the module's running Playwright
    b = browser.browser_type.launch(executable_path=CHROMIUM, args=mic, headless=True)
    try:
        context = b.new_context(permissions=["microphone"])
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(live.url + "/")
        expect(pg.locator("#version")).to_contain_text("polymodal ")
        pg.locator("#mic").click()
        expect(pg.locator("#mic")).to_have_text("Stop")
        pg.wait_for_timeout(3500)  # the phrase, with its pauses, plays about once and a half
        pg.locator("#mic").click()
        expect(pg.locator("#search-status")).to_contain_text("(heard)", timeout=60_000)
        assert "coffee" in pg.locator("#q").input_value()
        assert pg.locator("#grid li.card .path").first.inner_text().endswith("coffee.png")
        assert not errors, errors
    finally:
        b.close()


def test_without_a_query_the_page_shows_the_library_newest_first(page):
    page.wait_for_selector("#grid li.card")
    expect(page.locator("#search-status")).to_contain_text("newest first")
    dates = page.locator("#grid li.card time").evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))")
    assert len(dates) == 6 and dates == sorted(dates, reverse=True)  # the served library's six photos
    names = page.locator("#grid li.card .path").all_inner_texts()
    assert all("/" not in n for n in names)  # the file name; the folder is on hover
    assert page.locator("#grid li.card .path").first.get_attribute("title").endswith("/")


def test_a_search_lives_in_the_address_and_back_undoes_it(page, live):
    page.keyboard.type("a cup of coffee")
    page.keyboard.press("Enter")
    assert _first_card_name(page) == "coffee.png"
    assert "q=a+cup+of+coffee" in page.url
    page.locator("#q").fill("a cat")
    page.locator("#q").press("Enter")
    expect(page.locator("#search-status")).to_contain_text("“a cat”")
    page.go_back()  # back to the coffee search, from the address
    expect(page.locator("#search-status")).to_contain_text("“a cup of coffee”")
    assert page.locator("#q").input_value() == "a cup of coffee"
    page.goto(live.url + "/?q=a+rocket&sort=date&all=1")  # a link to a search, with its filters
    expect(page.locator("#search-status")).to_contain_text("“a rocket”")
    assert page.locator("#f-sort").input_value() == "date" and page.locator("#f-all").is_checked()


def test_the_viewer_shows_a_picture_its_details_and_steps_through_the_hits(page):
    page.keyboard.type("a photo")
    page.locator("#f-all").check()
    page.locator("#q").press("Enter")
    expect(page.locator("#search-status")).to_contain_text("results for")
    names = page.locator("#grid li.card .path").all_inner_texts()
    page.locator("#grid li.card img").first.click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    assert page.locator("#v-img").get_attribute("src").endswith("/original")
    meta = page.locator("#v-meta").inner_text()
    assert "Date" in meta and "Size" in meta and names[0] in meta
    page.keyboard.press("ArrowRight")
    expect(page.locator("#v-meta")).to_contain_text(names[1])
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#v-meta")).to_contain_text(names[0])
    page.locator("#v-similar").click()  # more like this: the viewer closes and the address says so
    expect(viewer).to_be_hidden()
    assert "like=" in page.url


def test_the_type_filter_keeps_only_that_kind(page):
    page.wait_for_selector("#grid li.card")
    page.locator("#filters summary").click()
    page.locator("#f-type").select_option("video")
    expect(page.locator("#search-status")).to_contain_text("the library is empty")  # photos only here
    page.locator("#f-type").select_option("image")
    page.wait_for_selector("#grid li.card")
    assert page.locator("#grid li.card").count() == 6


def test_dragging_a_box_in_the_viewer_searches_with_that_region(page):
    page.keyboard.type("a cup of coffee")
    page.keyboard.press("Enter")
    assert _first_card_name(page) == "coffee.png"
    page.locator("#grid li.card img").first.click()
    img = page.locator("#v-img")
    expect(img).to_be_visible()
    for _ in range(100):  # (the page's CSP forbids the eval behind wait_for_function)
        if img.evaluate("i => i.complete && i.naturalWidth"):
            break
        page.wait_for_timeout(50)
    r = img.bounding_box()
    assert r is not None
    page.mouse.move(r["x"] + r["width"] * 0.25, r["y"] + r["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(r["x"] + r["width"] * 0.6, r["y"] + r["height"] * 0.5, steps=5)
    page.mouse.move(r["x"] + r["width"] * 0.75, r["y"] + r["height"] * 0.8, steps=5)
    page.mouse.up()
    status = page.locator("#search-status")
    expect(status).to_contain_text("results for a part of coffee.png")
    box = [int(v) for v in status.inner_text().rsplit("(", 1)[1].rstrip(")").split(", ")]
    # in the photo's own pixels (600 x 400), not the screen's: 25%-75% of the width, 20%-80% of the height
    assert abs(box[0] - 150) <= 8 and abs(box[2] - 450) <= 8 and abs(box[1] - 80) <= 8 and abs(box[3] - 320) <= 8
    page.wait_for_selector("#grid li.card")
    assert page.locator("#grid li.card .path").first.inner_text() == "coffee.png"


@pytest.mark.slow  # a tiny diffusers pipeline is built and run on the CPU
def test_the_generate_view_makes_images(browser, served_library, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "generate"))  # tiny_pipeline
    from server_helpers import LiveServer
    from tiny_pipeline import make_tiny_sd

    from polymodal.generation import load_generator
    from polymodal.server import ServerConfig, create_app

    lib, _ = served_library
    generator = load_generator(f"diffusers:{make_tiny_sd(tmp_path / 'sd')}", device="cpu")
    app = create_app(ServerConfig(library=lib.root), library=lib, generator=generator)
    with LiveServer(app) as server:
        context = browser.new_context(viewport={"width": 390, "height": 844})
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server.url + "/")
        tab = pg.locator("#generate-tab")
        expect(tab).to_be_visible()  # shown because a generator is configured
        tab.click()
        pg.fill("#g-prompt", "a red square")
        pg.fill("#g-n", "2")
        pg.locator("#generate-form button[type=submit]").click()
        pg.wait_for_selector("#generate-result img", timeout=120_000)
        images = pg.locator("#generate-result img")
        assert images.count() == 2
        assert images.first.get_attribute("src").startswith("data:image/png;base64,")
        assert images.first.evaluate("img => img.naturalWidth") > 0
        context.close()
        assert not errors, errors
