"""Search on real photos with the offline model: text, image, weighted and negative terms, filters."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from library_helpers import photo_sources
from PIL import Image

from polymodal.errors import InputError
from polymodal.library import Library
from polymodal.library.query import Term, parse_term, query_vector


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, lite_encoder) -> tuple[Library, Path]:
    root = tmp_path_factory.mktemp("search")
    photos = root / "photos"
    for sub, names in {"2019": ["cat", "coffee", "rocket"], "2021": ["motorbike", "horse", "flower"],
                       "misc": ["astronaut", "china"]}.items():
        (photos / sub).mkdir(parents=True)
        for n in names:
            src = photo_sources()[n]
            shutil.copy(src, photos / sub / f"{n}{src.suffix}")
    # Dates without EXIF come from mtime: 2019 folder in 2019, 2021 folder in 2021, misc in 2023.
    for sub, year in (("2019", 2019), ("2021", 2021), ("misc", 2023)):
        for i, f in enumerate(sorted((photos / sub).iterdir())):
            t = __import__("datetime").datetime(year, 6, 1 + i).timestamp()
            os.utime(f, (t, t))
    lib = Library.open(root / "lib", model=lite_encoder)
    lib.add([photos])
    return lib, photos


@pytest.mark.parametrize("query,expected", [
    ("a cat", "cat.png"), ("a cup of coffee", "coffee.png"), ("a space rocket launch", "rocket.jpg"),
    ("a motorbike", "motorbike.png"), ("flowers", "flower.jpg"), ("a horse", "horse.png"),
])
def test_text_query_ranks_the_right_photo_first(indexed, query, expected):
    lib, _ = indexed
    hits = lib.search(query, k=3, floor=False)
    assert Path(hits[0].path).name == expected
    assert hits[0].score > hits[1].score >= hits[2].score
    assert {"id", "path", "score", "kind"} <= set(hits[0].to_dict())


def test_image_query_and_image_path_as_a_term(indexed):
    lib, photos = indexed
    by_option = lib.search(image=str(photos / "2019" / "rocket.jpg"), k=2, floor=False)
    assert Path(by_option[0].path).name == "rocket.jpg" and by_option[0].score == pytest.approx(1.0, abs=1e-5)
    by_term = lib.search(str(photos / "2019" / "rocket.jpg"), k=2, floor=False)
    assert [h.id for h in by_term] == [h.id for h in by_option]
    # An outside image (not in the library) works too: a resized copy of the cat finds the cat.
    probe = photos.parent / "probe.jpg"
    Image.open(photos / "2019" / "cat.png").convert("RGB").resize((200, 133)).save(probe)
    assert Path(lib.search(image=probe, k=1, floor=False)[0].path).name == "cat.png"


def test_weights_shift_the_ranking(indexed):
    lib, _ = indexed

    def gap(terms):
        scores = {Path(h.path).name: h.score for h in lib.search(terms, k=8, floor=False)}
        return scores["coffee.png"] - scores["cat.png"]

    assert gap(["3:a cup of coffee", "a cat"]) > gap(["a cup of coffee", "a cat"]) > gap(["a cup of coffee",
                                                                                          "3:a cat"])
    assert Path(lib.search(["4:a cup of coffee", "a cat"], k=1, floor=False)[0].path).name == "coffee.png"


def test_negative_terms_push_matches_away(indexed):
    lib, photos = indexed
    assert Path(lib.search("an animal", k=1, floor=False)[0].path).name == "cat.png"
    hits = lib.search("an animal", negative=["a cat"], k=3, floor=False)
    assert "cat.png" not in {Path(h.path).name for h in hits}
    hits = lib.search("a photo", negative=[str(photos / "2019" / "rocket.jpg")], k=8, floor=False)
    assert Path(hits[-1].path).name == "rocket.jpg"


def test_query_vector_is_the_normalised_weighted_sum(lite_encoder):
    a, b = lite_encoder.encode_texts(["sunset", "beach"])
    v = query_vector([Term(2.0, text="sunset"), Term(-1.0, text="beach")], lite_encoder)
    expect = 2 * a - b
    np.testing.assert_allclose(v, expect / np.linalg.norm(expect), atol=1e-5)
    assert parse_term("2:sunset") == Term(2.0, text="sunset")
    assert parse_term("0.5:dog", negative=True) == Term(-0.5, text="dog")
    assert parse_term("10:30 meeting").weight == 10.0
    with pytest.raises(InputError, match="weight 0"):
        parse_term("0:x")


def test_a_query_with_only_negative_terms_is_refused(indexed):
    lib, _ = indexed
    with pytest.raises(InputError, match="positive term"):
        lib.search(negative=["a cat"], floor=False)


def test_a_negative_weight_is_refused_naming_not():
    # "-1:a cat" used to be embedded as that literal text, so it pulled towards cats instead of away.
    with pytest.raises(InputError, match=r"negative weight.*--not '1:a cat'"):
        parse_term("-1:a cat")
    with pytest.raises(InputError, match="negative weight"):
        parse_term("-0.5:people", negative=True)
    assert parse_term("a-1:b") == Term(1.0, text="a-1:b")


def test_date_filters_use_mtime_without_exif(indexed):
    lib, _ = indexed
    hits = lib.search("a cat", k=10, after="2021", before="2022", floor=False)
    assert {Path(h.path).name for h in hits} == {"motorbike.png", "horse.png", "flower.jpg"}
    hits = lib.search("a cat", k=10, before="2019-12-31", floor=False)
    assert {Path(h.path).name for h in hits} == {"cat.png", "coffee.png", "rocket.jpg"}
    with pytest.raises(InputError, match="not a date"):
        lib.search("a cat", after="last tuesday", floor=False)


def test_path_glob_type_min_score_and_sort(indexed):
    lib, _ = indexed
    hits = lib.search("a cat", k=2, path="*/2021/*", floor=False)
    assert len(hits) == 2 and all("/2021/" in h.path for h in hits)
    misc = lib.search("a cat", k=5, path="misc/*", floor=False)
    assert {Path(h.path).name for h in misc} == {"astronaut.png", "china.jpg"}
    assert lib.search("a cat", k=3, kind="video", floor=False) == []
    assert len(lib.search("a cat", k=3, kind="image", floor=False)) == 3
    strict = lib.search("a cat", k=10, min_score=0.6, floor=False)
    assert [Path(h.path).name for h in strict] == ["cat.png"]
    by_date = lib.search("a cat", k=8, sort="date", floor=False)
    dates = [h.date for h in by_date]
    assert dates == sorted(dates, reverse=True) and len(by_date) == 8
    with pytest.raises(InputError):
        lib.search("a cat", kind="document", floor=False)


def test_similar_by_path_id_and_outside_image(indexed):
    lib, photos = indexed
    cat = lib.get(photos / "2019" / "cat.png")
    by_path = lib.similar(photos / "2019" / "cat.png", k=3)
    assert cat.id not in {h.id for h in by_path} and len(by_path) == 3
    assert [h.id for h in lib.similar(cat.id, k=3)] == [h.id for h in by_path]
    outside = photos.parent / "cat_copy.jpg"
    Image.open(photos / "2019" / "cat.png").convert("RGB").save(outside, quality=70)
    assert lib.similar(outside, k=1)[0].id == cat.id
    with pytest.raises(InputError, match="neither"):
        lib.similar("no-such-thing")


def test_tags_are_stored_and_searchable(tmp_path, photo_dir, lite_encoder):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([photo_dir])
    labels = ["cat", "coffee", "rocket", "motorcycle", "horse", "flower"]
    tagged = lib.tag(labels)
    assert tagged >= 5
    hits = lib.search("an animal", tags=["cat"], k=5, floor=False)
    assert [Path(h.path).name for h in hits] == ["cat.png"] and "cat" in hits[0].tags
    assert "rocket" in lib.get(photo_dir / "rocket.jpg").tags


def test_tagging_refuses_an_empty_or_single_label_list(tmp_path, photo_dir, lite_encoder):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([photo_dir / "cat.png", photo_dir / "rocket.jpg"])
    # An empty list used to fall back to the built-in labels, and a single label (a mistyped labels file
    # name, say) won every item's softmax, so every item was tagged with it.
    with pytest.raises(InputError, match=r"at least two labels.*got none"):
        lib.tag([])
    with pytest.raises(InputError, match=r"at least two labels.*'labels\.txt'.*not found"):
        lib.tag(["labels.txt"])
    assert all(not h.tags for h in lib.search("a photo", k=5, floor=False))
