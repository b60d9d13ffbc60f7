"""Zero-shot tags: each item gets the labels its embedding matches best, stored so searches can filter on them.

Probabilities come from the model's own logit scale over the label set (Radford et al. 2021, §3.1.4), so an
item is tagged with a label only when that label clearly wins over the others in the set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polymodal.models.base import Encoder

#: used when ``tag`` is given no labels: common subjects of personal photo collections
DEFAULT_LABELS = (
    "person", "people", "child", "baby", "selfie", "cat", "dog", "bird", "horse", "animal", "flower", "tree",
    "plant", "food", "drink", "coffee", "car", "motorcycle", "bicycle", "boat", "airplane", "train", "rocket",
    "building", "house", "city", "street", "beach", "sea", "lake", "river", "mountain", "forest", "snow",
    "sunset", "sky", "night", "document", "screenshot", "text", "art", "painting", "sport", "concert",
)
#: a label is kept when its probability over the label set reaches this
MIN_PROBABILITY = 0.25
#: at most this many labels per item
MAX_TAGS = 3


def assign_tags(vectors: np.ndarray, labels: Sequence[str], encoder: Encoder, *,
                min_probability: float = MIN_PROBABILITY, max_tags: int = MAX_TAGS) -> list[list[str]]:
    from polymodal.zeroshot import label_embeddings, probabilities

    classes = label_embeddings(encoder, list(labels), "simple")
    probs = probabilities(encoder, vectors @ classes.T)
    out = []
    for row in probs:
        order = np.argsort(-row)[:max_tags]
        out.append([labels[i] for i in order if row[i] >= min_probability])
    return out
