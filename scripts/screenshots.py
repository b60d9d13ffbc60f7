"""Screenshots of the web page for the docs (docs/screens/*.png), taken from a real server in Debian's chromium.

    python scripts/screenshots.py [--out docs/screens]

Four views: an empty library, the library with the bundled photos and a search, the picture viewer, and a
video moment (a 9-second video of three of the photos with espeak-ng speech, made with the tests' media
factory). Each server runs as ``polymodal serve`` on a free loopback port with the offline model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # media_factory: the test videos


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(library: Path) -> Iterator[str]:
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "polymodal", "serve", "--library", str(library), "--port",
                             str(port), "--model", "lite"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def index(folder: Path, library: Path) -> None:
    subprocess.run([sys.executable, "-m", "polymodal", "index", str(folder), "--library", str(library), "--model",
                    "lite"], check=True, stdout=subprocess.DEVNULL)


def search_shot(page: Any, address: str, out: Path) -> None:
    """The page at a search's address, once its results are in (thumbnails given a moment to load)."""
    from playwright.sync_api import expect

    page.goto(address)
    expect(page.locator("#search-status")).to_contain_text("results for")
    page.wait_for_timeout(500)
    page.screenshot(path=str(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screens")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import skimage
    from playwright.sync_api import expect, sync_playwright

    from media_factory import Scene, Speech, make_video, speech_track

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        work = Path(tmp)
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 760})

        (work / "empty").mkdir()
        index(work / "empty", work / "empty-lib")
        with serving(work / "empty-lib") as url:
            page.goto(url + "/")
            expect(page.locator("#search-status")).to_contain_text("empty")
            page.screenshot(path=str(args.out / "empty-library.png"))

        photos = work / "photos"
        photos.mkdir()
        for p in sorted((Path(skimage.__file__).parent / "data").iterdir()):
            if p.suffix in (".png", ".jpg") and p.stat().st_size > 20_000:
                shutil.copy(p, photos / p.name)
        index(photos, work / "lib")
        with serving(work / "lib") as url:
            search_shot(page, url + "/?q=a+cup+of+coffee&all=1", args.out / "search-results.png")
            page.locator("#grid li.card img").first.click()
            expect(page.locator("#viewer")).to_be_visible()
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out / "viewer.png"))

        clips = work / "clips"
        clips.mkdir()
        audio, _ = speech_track([Speech("the train to london is late", 3.4)], 9.0)
        make_video(clips / "scenes.mp4", [Scene("cat", 3), Scene("coffee", 3), Scene("rocket", 3)], fps=10,
                   audio=audio)
        index(clips, work / "video-lib")
        with serving(work / "video-lib") as url:
            search_shot(page, url + "/?q=the+train+to+london", args.out / "video-moment.png")
        browser.close()
    print("\n".join(str(p.relative_to(ROOT)) for p in sorted(args.out.glob("*.png"))))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
