"""Near-duplicate grouping on its own: blocks, transitive links, the weakest link as the group's score."""

from __future__ import annotations

import numpy as np

from polymodal.library import duplicates as dup


def test_pairs_match_brute_force_across_blocks(monkeypatch):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16))
    vecs = np.concatenate([base, base[:10] + rng.normal(0, 0.02, (10, 16))])
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    monkeypatch.setattr(dup, "_BLOCK_FLOATS", 16 * 50)  # 16-row blocks: the pass crosses block boundaries
    pairs = dup.near_duplicate_pairs(vecs, 0.95)
    sim = vecs @ vecs.T
    expect = {(i, j) for i in range(50) for j in range(i + 1, 50) if sim[i, j] >= 0.95}
    assert {(i, j) for i, j, _ in pairs} == expect and len(expect) >= 10
    for i, j, s in pairs:
        assert abs(s - sim[i, j]) < 1e-5


def test_groups_are_transitive_with_the_weakest_link():
    groups = dup.group(6, [(0, 1, 0.99), (1, 2, 0.96), (4, 5, 0.97)])
    as_sets = sorted((round(s, 2), sorted(m)) for s, m in groups)
    assert as_sets == [(0.96, [0, 1, 2]), (0.97, [4, 5])]
