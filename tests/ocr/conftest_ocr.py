"""A test set for OCR drawn here: English and Chinese lines in Debian's fonts, several sizes, one line upside
down, on real photos (scikit-image's and scikit-learn's samples), with where each line was drawn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

FONTS = Path("/usr/share/fonts/truetype")
DEJAVU = FONTS / "dejavu"
CHINESE = FONTS / "wqy" / "wqy-zenhei.ttc"  # fonts-wqy-zenhei (.ci/run installs it)


@dataclass(frozen=True)
class Drawn:
    text: str
    box: tuple[int, int, int, int]  # where the ink is, x0, y0, x1, y1, in the saved picture's pixels
    upside_down: bool = False


@dataclass(frozen=True)
class Page:
    name: str
    path: Path
    lines: list[Drawn]  # in reading order


def font(path: Path, size: int):
    from PIL import ImageFont

    if not path.exists():
        pytest.skip(f"font {path} is not installed (apt-get install fonts-dejavu-core fonts-wqy-zenhei)")
    return ImageFont.truetype(str(path), size)


def draw_lines(photo, specs: list[tuple[str, Path, int, tuple[int, int], bool]]) -> list[Drawn]:
    """Draw each (text, font file, size, (x, y), upside down) on a pale label, as a sign or caption would be."""
    from PIL import Image, ImageDraw

    out = []
    for text, path, size, (x, y), flip in specs:
        f = font(path, size)
        left, top, right, bottom = f.getbbox(text)
        pad = size // 3
        label = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), (245, 242, 230))
        ImageDraw.Draw(label).text((pad - left, pad - top), text, font=f, fill=(20, 20, 30))
        if flip:
            label = label.transpose(Image.Transpose.ROTATE_180)
        photo.paste(label, (x, y))
        out.append(Drawn(text, (x + pad, y + pad, x + pad + right - left, y + pad + bottom - top), flip))
    return out


def _photo(name: str, size: tuple[int, int]):
    from PIL import Image

    if name.startswith("sklearn:"):
        import sklearn.datasets

        path = Path(sklearn.datasets.__file__).parent / "images" / name.split(":", 1)[1]
    else:
        import skimage

        path = Path(skimage.__file__).parent / "data" / name
    return Image.open(path).convert("RGB").resize(size, Image.Resampling.BICUBIC)


SANS, SERIF, MONO, BOLD = (DEJAVU / "DejaVuSans.ttf", DEJAVU / "DejaVuSerif.ttf", DEJAVU / "DejaVuSansMono.ttf",
                           DEJAVU / "DejaVuSans-Bold.ttf")

#: (photo, size, lines): each line (text, font, size in px, position, upside down)
PAGES = [
    ("astronaut.png", (1200, 1200), [
        ("Mission control 2024", SANS, 44, (60, 60), False),
        ("Launch at dawn", SERIF, 32, (700, 70), False),
        ("北京欢迎你", CHINESE, 48, (60, 400), False),
        ("Upside down caption", BOLD, 40, (60, 900), True),
    ]),
    ("sklearn:china.jpg", (1280, 960), [
        ("Summer Palace Gate", SERIF, 40, (80, 80), False),
        ("颐和园东宫门", CHINESE, 44, (80, 300), False),
        ("ticket 35 yuan", MONO, 30, (80, 700), False),
    ]),
    ("coffee.png", (1200, 800), [
        ("Espresso bar open", BOLD, 36, (700, 40), False),
        ("咖啡 三十元", CHINESE, 40, (60, 620), False),
        ("fresh beans daily", SANS, 26, (600, 700), False),
    ]),
]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[Page]:
    folder = tmp_path_factory.mktemp("ocr-set")
    pages = []
    for i, (photo_name, size, specs) in enumerate(PAGES):
        photo = _photo(photo_name, size)
        drawn = draw_lines(photo, specs)
        path = folder / f"page{i}.png"
        photo.save(path)
        pages.append(Page(photo_name, path, drawn))
    return pages


@pytest.fixture(scope="session")
def engine():
    from polymodal.ocr import load_engine

    return load_engine()


@pytest.fixture(scope="session")
def read_pages(rendered: list[Page], engine):
    from polymodal.ocr import read_text

    return read_text([p.path for p in rendered], engine=engine)
