"""Reading rows, splitting them, and the feature cache keyed by (model, content hash)."""

from __future__ import annotations

import numpy as np
import pytest
from shapes import COLOURS, draw, write_jsonl

from polymodal.errors import InputError
from polymodal.fusion.data import read_dataset
from polymodal.fusion.features import FeatureCache, encode_rows
from polymodal.fusion.pipeline import split_rows
from polymodal.models import load_model


def test_feature_cache_is_keyed_by_content_not_by_path(tiny_clip, tmp_path):
    rng = np.random.default_rng(0)
    draw("red", "square", rng).save(tmp_path / "a.png")
    draw("blue", "dot", rng).save(tmp_path / "b.png")
    data = write_jsonl(tmp_path / "d.jsonl", [{"image": "a.png", "text": "one", "label": "x"},
                                              {"image": "b.png", "text": "two", "label": "y"}])
    encoder = load_model(str(tiny_clip))
    cache = FeatureCache(encoder, root=tmp_path / "cache")
    ds = read_dataset(data)
    first, stats, _, _ = encode_rows(ds.rows, ds.modalities, encoder, cache=cache)
    assert (stats.encoded, stats.cached) == (4, 0)

    (tmp_path / "a.png").rename(tmp_path / "renamed.png")  # same bytes, new name: a hit
    draw("green", "stripe", rng).save(tmp_path / "b.png")  # same name, new bytes: a miss
    data = write_jsonl(tmp_path / "d.jsonl", [{"image": "renamed.png", "text": "one", "label": "x"},
                                              {"image": "b.png", "text": "two", "label": "y"}])
    ds = read_dataset(data)
    second, stats, _, _ = encode_rows(ds.rows, ds.modalities, encoder, cache=cache)
    assert (stats.encoded, stats.cached) == (1, 3)
    np.testing.assert_array_equal(second.features[0][0], first.features[0][0])
    assert not np.allclose(second.features[0][1], first.features[0][1])
    np.testing.assert_array_equal(second.features[1], first.features[1])


def test_given_splits_are_used_and_must_cover_every_row(tmp_path):
    rows = [{"text": f"t{i}", "label": "ab"[i % 2], "split": ["train", "train", "valid", "test"][i % 4]}
            for i in range(16)]
    ds = read_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    labels = np.array([ds.classes.index(r.label) for r in ds.rows])
    splits = split_rows(ds.rows, labels, 0.15, 0.15, 0, ds.source)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "val": 4, "test": 4}
    rows[5].pop("split")
    ds = read_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    with pytest.raises(InputError, match=r"line 6 of .* has no split while other rows do"):
        split_rows(ds.rows, labels, 0.15, 0.15, 0, ds.source)


def test_random_split_is_seeded_and_stratified(tmp_path):
    rows = [{"text": f"t{i}", "label": c} for i in range(20) for c in COLOURS]
    ds = read_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    labels = np.array([ds.classes.index(r.label) for r in ds.rows])
    a = split_rows(ds.rows, labels, 0.15, 0.15, 7, ds.source)
    b = split_rows(ds.rows, labels, 0.15, 0.15, 7, ds.source)
    c = split_rows(ds.rows, labels, 0.15, 0.15, 8, ds.source)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    for k, share in (("val", 3), ("test", 3)):
        assert np.bincount(labels[a[k]], minlength=5).tolist() == [share] * 5  # 15% of 20 per class


def test_csv_rows_and_missing_modalities(tmp_path):
    rng = np.random.default_rng(0)
    draw("red", "square", rng).save(tmp_path / "a.png")
    (tmp_path / "d.csv").write_text("image,text,label\na.png,,red\n,a blue thing,blue\n")
    ds = read_dataset(tmp_path / "d.csv")
    assert ds.modalities == ("image", "text")
    assert [sorted(r.values) for r in ds.rows] == [["image"], ["text"]]
    assert [r.line for r in ds.rows] == [2, 3]
    (tmp_path / "e.csv").write_text("image,text,label\n,,red\n")
    with pytest.raises(InputError, match=r"line 2 of .* has none of the fields image, text"):
        read_dataset(tmp_path / "e.csv")
    with pytest.raises(InputError, match=r"must be \.jsonl or \.csv"):
        read_dataset(tmp_path / "a.png")
