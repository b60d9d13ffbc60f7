"""The short variant of benchmarks/hostile_corpus.py: the whole corpus, indexed in this process with the loaded
model (the script indexes it with a real `polymodal index` and also measures the indexer's peak RSS)."""

from __future__ import annotations

import pytest
from hostile_corpus import PER_FILE_LIMIT_S, Entry, judge, run


@pytest.mark.timeout(300)
def test_every_hostile_file_is_a_recorded_failure_and_nothing_outside_is_read(tmp_path, lite_encoder):
    result = run(tmp_path, encoder=lite_encoder, log=lambda _m: None, big=False)  # no 81 MP decode here
    assert result.files >= 30 and result.hostile >= 30
    assert result.problems == [], "\n".join(result.problems)
    assert result.ok == result.files
    assert result.secret_opens == [] and result.http_connections == 0 and not result.secret_in_library
    assert 0 < result.slowest_file_s < PER_FILE_LIMIT_S
    assert all(r.seconds < 1.0 for r in result.results if r.seconds is not None and r.expect != "index")
    by_name = {r.name: r for r in result.results}
    assert "scan bomb" in by_name["bombs/jpeg_scan_bomb.jpg"].reason
    assert "too many pixels" in by_name["bombs/png_10000x10000.png"].reason  # under 2x: Pillow only warns
    assert "not followed" in by_name["links/outside.jpg"].reason
    assert by_name["good/caf\udce9_\udcff.png"].outcome == "indexed"  # a name that is not UTF-8


def test_a_file_that_must_fail_is_never_excused_as_unscanned():
    broken = Entry("video/broken.mkv", b"video/broken.mkv", "a broken Matroska file", "fail", "not a readable")
    scanned = frozenset({".mkv", ".jpg"})
    assert judge(broken, "failed", "not a readable video file", scanned) == (True, "")
    ok, why = judge(broken, "absent", None, scanned)
    assert not ok and "expected fail, got absent" in why
    # The same file once .mkv is no longer scanned: before, the judge turned "must fail" into "absent" and passed.
    ok, why = judge(broken, "absent", None, frozenset({".jpg"}))
    assert not ok and ".mkv files are not scanned" in why
    playlist = Entry("video/list.m3u8", b"video/list.m3u8", "a playlist", "skip")
    assert judge(playlist, "absent", None, frozenset({".jpg"})) == (True, "")
