"""The relevance floor and confidence (library/relevance.py), end to end through the offline model on every
photo shipped by scikit-image and scikit-learn: a search shows what stands out and says when nothing does."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from polymodal.cli import main
from polymodal.library import Library
from polymodal.library import relevance as rel


def _all_photos() -> list[Path]:
    import skimage
    import sklearn.datasets

    found: list[Path] = []
    for folder in (Path(skimage.__file__).parent / "data", Path(sklearn.datasets.__file__).parent / "images"):
        found += sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                        and p.stat().st_size > 20_000)
    return found


@pytest.fixture(scope="module")
def library(tmp_path_factory, lite_encoder) -> Library:
    root = tmp_path_factory.mktemp("relevance")
    photos = root / "photos"
    photos.mkdir()
    for i, src in enumerate(_all_photos()):
        dst = photos / src.name
        shutil.copy(src, dst)
        t = 1_600_000_000 + i * 86_400  # a distinct date each, in the order of the names
        os.utime(dst, (t, t))
    lib = Library.open(root / "lib", model=lite_encoder)
    lib.add([photos])
    assert lib.status().items >= 20
    return lib


def test_a_search_shows_what_stands_out_not_the_k_nearest(library):
    hits = library.search("a cup of coffee", k=10)
    assert [Path(h.path).name for h in hits][:1] == ["coffee.png"]
    assert len(hits) <= 2 and all(h.confidence is not None and h.confidence >= rel.FLOOR for h in hits)
    # positive control: the same search without the floor returns the 10 nearest, and the floor is what cut
    # the other nine (each of them is under it)
    everything = library.search("a cup of coffee", k=10, floor=False)
    assert len(everything) == 10 and everything[0].id == hits[0].id
    assert all(h.confidence is not None and h.confidence < rel.FLOOR for h in everything[len(hits):])


def test_a_query_no_picture_shows_returns_nothing_and_all_returns_the_nearest(library):
    assert library.search("a red car", k=10) == []
    nearest = library.search("a red car", k=5, floor=False)
    assert len(nearest) == 5 and all(h.confidence is not None and h.confidence < rel.FLOOR for h in nearest)


def test_confidence_follows_the_score_and_is_a_probability(library):
    hits = library.search("a cat", k=23, floor=False)
    confidences = [h.confidence for h in hits]
    assert all(c is not None and 0.0 < c < 1.0 for c in confidences)
    assert confidences == sorted(confidences, reverse=True)  # the same order as the scores
    assert Path(hits[0].path).name == "chelsea.png" and hits[0].confidence > 0.8 > hits[1].confidence


def test_sort_by_date_orders_the_hits_that_pass_the_cut(library):
    by_score = library.search("a motorcycle", k=10)
    by_date = library.search("a motorcycle", k=10, sort="date")
    assert {h.id for h in by_date} == {h.id for h in by_score}
    assert len(by_date) >= 2 and {Path(h.path).name for h in by_date} <= {"motorcycle_left.png",
                                                                          "motorcycle_right.png", "chelsea.png"}
    dates = [h.date for h in by_date]
    assert dates == sorted(dates, reverse=True)


def test_a_query_by_example_carries_no_confidence_and_no_floor(library):
    cat = next(p for p in _all_photos() if p.name == "chelsea.png")
    by_image = library.search(image=str(cat), k=5)
    assert len(by_image) == 5 and all(h.confidence is None for h in by_image)
    similar = library.similar(by_image[0].id, k=4)
    assert len(similar) == 4 and all(h.confidence is None for h in similar)
    mixed = library.search("a cat", image=str(cat), k=5)  # an image term: no calibrated scale either
    assert len(mixed) == 5 and all(h.confidence is None for h in mixed)


def test_the_cli_says_when_nothing_stands_out_and_shows_confidence(library, lite_encoder, capsys, monkeypatch):
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(lite_encoder.folder.parents[2]))  # its export, not a new one
    assert main(["search", "a red car", "--library", str(library.path)]) == 0
    out = capsys.readouterr().out
    assert "relevance floor" in out and "--all" in out
    assert main(["search", "a red car", "--all", "-k", "3", "--library", str(library.path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["#", "SCORE", "CONF"] and len(table) == 4
    assert main(["search", "a cat", "--json", "--library", str(library.path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["path"].endswith("chelsea.png") and rows[0]["confidence"] > 0.8
