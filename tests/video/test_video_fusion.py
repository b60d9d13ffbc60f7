"""Normalisation, fusion and merging of moments, on hand-made candidates."""

from __future__ import annotations

import pytest

from polymodal.errors import InputError
from polymodal.library.moments import Unit, check, fuse, merge, normalise

REF = {"visual": [0.18, 0.20, 0.22], "speech": [0.0, 0.1, 0.2]}  # means 0.2 / 0.1, spreads ~0.016 / ~0.082


def _units() -> list[Unit]:
    return [
        Unit("photo", "visual", 0.30),  # z ~ 6
        Unit("vid", "visual", 0.21, 0.0, 3.0, "v0000"),  # z ~ 0.6: below the evidence floor of a merge
        Unit("vid", "visual", 0.28, 3.0, 6.0, "v0001"),  # z ~ 4.9
        Unit("vid", "speech", 0.60, 3.5, 5.0, "s0000", "the train is late"),  # z ~ 6.1
        Unit("vid", "speech", 0.05, 6.5, 8.0, "s0001", "hello"),  # below the background
    ]


def test_normalise_against_the_reference() -> None:
    units = _units()
    normalise(units, REF)
    z = {u.segment or u.item_id: u.z for u in units}
    assert z["photo"] == pytest.approx((0.30 - 0.2) / 0.0163299, rel=1e-3)
    assert z["s0000"] == pytest.approx((0.60 - 0.1) / 0.0816497, rel=1e-3)
    assert [u.rank for u in units if u.modality == "speech"] == [1, 2]
    assert units[4].evidence == 0.0  # below the background counts as no evidence


def test_weighted_fusion_adds_evidence_at_the_same_time() -> None:
    units = _units()
    normalise(units, REF)
    fuse(units, "weighted")
    photo, _, during, said, _ = units
    assert photo.fused == pytest.approx(photo.evidence)  # a photo has no speech: nothing added, nothing taken
    assert during.fused == pytest.approx(during.evidence + said.evidence)
    assert said.fused == pytest.approx(during.fused)
    fuse(units, "weighted", {"visual": 1.0, "speech": 0.0})
    assert said.fused == pytest.approx(during.evidence)
    # Faint evidence of the other modality (z below 2) supports nothing.
    faint = [Unit("v", "visual", 0.30, 0.0, 3.0, "v0"), Unit("v", "speech", 0.20, 0.0, 3.0, "s0")]
    normalise(faint, REF)
    fuse(faint)
    assert 0 < faint[1].z < 2 and faint[0].fused == pytest.approx(faint[0].evidence)
    # ... and a unit that does not stand out by itself borrows nothing from a strong one beside it.
    assert faint[1].fused == pytest.approx(faint[1].evidence)
    moments = merge(faint, limit=5)
    assert (moments[0].modality, len(moments)) == ("visual", 1)


def test_rrf_counts_only_units_above_the_background() -> None:
    units = _units()
    normalise(units, REF)
    fuse(units, "rrf")
    photo, quiet, during, said, hello = units
    assert photo.fused == pytest.approx(1 / 61)
    assert during.fused == pytest.approx(1 / 62 + 1 / 61)
    assert said.fused == pytest.approx(1 / 61 + 1 / 62)  # the phrase ranks first in speech, its segment second
    assert quiet.fused == 0.0 and hello.fused == 0.0


def test_merge_keeps_the_range_of_the_evidence_that_found_it() -> None:
    units = _units()
    normalise(units, REF)
    fuse(units, "weighted")
    moments = merge(units, limit=10)
    first = moments[0]
    # The spoken phrase and the visual segment tie on fused score; the phrase stands out more in its own
    # modality, so the moment is when it is said, and the overlapping segment is absorbed into it.
    assert (first.item_id, first.start, first.end, first.modality) == ("vid", 3.5, 5.0, "speech")
    assert {u.segment for u in first.units} == {"s0000", "v0001"} and first.best_visual.segment == "v0001"
    assert [m.item_id for m in moments].count("photo") == 1
    assert len(moments) == 4  # photo, phrase(+v0001), v0000, s0001


def test_adjacent_units_of_one_modality_merge_when_both_stand_out() -> None:
    units = [Unit("v", "visual", 0.30, 0.0, 2.0, "v0"), Unit("v", "visual", 0.29, 2.0, 4.0, "v1"),
             Unit("v", "visual", 0.30, 4.5, 6.0, "v2"), Unit("v", "visual", 0.21, 6.0, 8.0, "v3"),
             Unit("v", "visual", 0.30, 12.0, 14.0, "v4")]
    normalise(units, REF)
    fuse(units)
    moments = merge(units, limit=10)
    spans = sorted((m.start, m.end) for m in moments)
    # v0..v2 join (adjacent, or 0.5 s apart); v3 is adjacent but does not stand out; v4 is 6 s away.
    assert spans == [(0.0, 6.0), (6.0, 8.0), (12.0, 14.0)]


def test_limit_and_checks() -> None:
    units = _units()
    normalise(units, REF)
    fuse(units)
    assert len(merge(units, limit=2)) == 2
    with pytest.raises(InputError, match="unknown fusion"):
        check("max", None)
    with pytest.raises(InputError, match="unknown modality"):
        check("rrf", "smell")
