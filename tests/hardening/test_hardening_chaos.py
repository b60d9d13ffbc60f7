"""The short variant of benchmarks/chaos_index.py: a real ``polymodal index``, ``reindex`` and ANN build
SIGKILLed at random points and restarted; checked after every kill and against a clean run at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chaos_index import BATCH, run_chaos

from polymodal.library import Library


@pytest.fixture
def user_cache(monkeypatch):
    # The indexers are subprocesses: they use the user's cache, where the lite model's ONNX export is made
    # once, instead of exporting it again into each test's empty cache (minutes on a loaded CPU).
    monkeypatch.delenv("POLYMODAL_CACHE_DIR", raising=False)


def _clean(encoder):
    def build(folder: Path, lib_dir: Path) -> None:
        Library.open(lib_dir, model=encoder, batch_size=BATCH).add([folder])
    return build


# Each kill restarts a Python process that imports lancedb and loads the model: seconds on an idle CPU,
# far more on a shared one (3-5 min measured at load 15), hence slow and the generous timeout.
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_index_survives_random_kills(tmp_path, lite_encoder, user_cache):
    # 160 files: on an idle machine a run indexes dozens of files in the second it may live after its first
    # commit, and three kills must land before the collection is done
    result = run_chaos(tmp_path, files=160, kills=3, reindex_kills=0, ann_kills=0, seed=os.getpid(),
                       thumbnails=False, clean=_clean(lite_encoder), log=lambda _m: None)
    assert result.index_kills == 3, result.notes
    assert result.checks_after_kills == 3 and result.max_unrecorded <= BATCH
    assert result.max_vector_diff <= 1e-4


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_reindex_and_ann_build_survive_random_kills(tmp_path, lite_encoder, user_cache):
    result = run_chaos(tmp_path, files=60, kills=0, reindex_kills=1, ann_kills=1, seed=os.getpid(),
                       thumbnails=False, clean=_clean(lite_encoder), log=lambda _m: None)
    assert result.reindex_kills == 1 and result.ann_kills == 1, result.notes
    # Every round is checked after its kill (a failed check raises), including rounds whose kill came after
    # the work had finished, which do not count as kills: so at least one check per kill, more by timing.
    assert result.checks_after_kills >= 2
    assert result.max_vector_diff <= 1e-4
