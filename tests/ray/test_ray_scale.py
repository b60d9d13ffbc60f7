"""Millions of items, in small: the ANN build reports its progress; float16 libraries index and search."""

from __future__ import annotations

from itertools import pairwise

from ray_helpers import make_photos

from polymodal.library import Library


def test_ann_build_reports_phases_on_a_float16_library(tmp_path, photos, lite_encoder):
    src = tmp_path / "src"
    make_photos(src, list(photos.values()), 40, seed=11)
    lib = Library.open(tmp_path / "lib", model=lite_encoder, vector_type="float16")
    lib.ann_threshold = 30  # as a library past 50,000 items does
    phases: list[tuple[str, float]] = []
    lib.ann_progress = lambda phase, s: phases.append((phase, s))
    report = lib.add([src])
    assert report.index_built and lib.store.has_ann_index()
    assert phases[0] == ("building", 0.0) and phases[-1][0] == "built"
    assert all(b[1] >= a[1] for a, b in pairwise(phases))  # elapsed time only grows

    ann = lib.search(text="a cat", k=5, floor=False)
    exact = lib.search(text="a cat", k=5, exact=True, floor=False)
    assert [h.id for h in ann] == [h.id for h in exact]
    assert abs(ann[0].score - exact[0].score) < 1e-6
