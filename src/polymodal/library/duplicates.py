"""Near-duplicate groups: items whose embeddings are closer than a threshold, linked transitively.

Exact duplicates (same bytes) are already one item with several paths and come out as groups of score 1.
The pairwise pass is blocked matrix products, O(N^2 * dim): seconds for tens of thousands of items.
"""

from __future__ import annotations

import numpy as np

#: cosine similarity above which two items count as near-duplicates: a re-encode, resize or small crop
#: of one photo scores above it with CLIP-like models, two different shots of one scene usually below
DEFAULT_THRESHOLD = 0.95
_BLOCK = 1024
_BLOCK_FLOATS = 2**25


def near_duplicate_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, similarity) with i < j for every pair at or above ``threshold``."""
    pairs: list[tuple[int, int, float]] = []
    n = len(vectors)
    step = max(16, min(_BLOCK, _BLOCK_FLOATS // max(n, 1)))  # keeps each block product near 128 MB
    for start in range(0, n, step):
        block = vectors[start: start + step] @ vectors[start:].T
        rows, cols = np.nonzero(block >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist()):
            i, j = start + r, start + c
            if j > i:
                pairs.append((i, j, float(block[r, c])))
    return pairs


def group(n: int, pairs: list[tuple[int, int, float]]) -> list[tuple[float, list[int]]]:
    """Connected components of the pairs (union-find), each with the weakest similarity that joins it."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
    members: dict[int, list[int]] = {}
    weakest: dict[int, float] = {}
    for i, _, s in pairs:
        r = find(i)
        weakest[r] = min(weakest.get(r, 1.0), s)
    for i in range(n):
        r = find(i)
        if r in weakest:
            members.setdefault(r, []).append(i)
    return [(weakest[r], m) for r, m in members.items()]
