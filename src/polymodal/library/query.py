"""Query algebra, after rclip: weighted text and image terms added together, negative terms subtracted.

A term is a text, or a path to an image file; ``"2:sunset"`` weighs a term twice (any positive number
works). The query vector is the weighted sum of the positive terms' embeddings minus that of the negative
ones, re-normalised, so ``"beach" --not "people"`` ranks beaches that look least like people first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polymodal.errors import InputError
from polymodal.models.base import Encoder

_WEIGHT = re.compile(r"^(-?)(\d+(?:\.\d+)?|\.\d+):(.+)$", re.S)


@dataclass(frozen=True)
class Term:
    weight: float  # negative for terms to move away from
    text: str | None = None
    image: Any = None  # a path, bytes or PIL image

    def describe(self) -> str:
        what = self.text if self.text is not None else f"image {self.image}"
        return f"{self.weight:+g}:{what}"


def parse_term(value: Any, *, negative: bool = False, image: bool = False) -> Term:
    """``"2:sunset"`` -> Term(2, text="sunset"); an existing file path (or ``image=True``) -> an image term."""
    sign = -1.0 if negative else 1.0
    if not isinstance(value, str):
        return Term(sign, image=value)  # bytes or a PIL image given through the API
    weight, body = 1.0, value
    m = _WEIGHT.match(value)
    if m and not os.path.exists(value):
        weight, body = float(m.group(2)), m.group(3)
        if m.group(1):
            # Otherwise "-1:people" would be embedded as that literal text and pull towards people.
            raise InputError(f"query term {value!r} has a negative weight; give it as a negative term instead: "
                             f"--not {m.group(2) + ':' + body!r} (in Python: negative=[...])")
        if weight == 0:
            raise InputError(f"query term {value!r} has weight 0; use a positive weight, or drop the term")
    if not body.strip():
        raise InputError(f"query term {value!r} is empty")
    if image or os.path.isfile(body):
        if not os.path.exists(body):
            raise InputError(f"query image {body} does not exist")
        return Term(sign * weight, image=body)
    return Term(sign * weight, text=body)


def literal(text: str) -> str:
    """``text`` as a term that means itself: a transcript such as "2:30 pm" is not weight 2 of "30 pm"."""
    return f"1:{text}" if _WEIGHT.match(text) else text


def build_terms(positive: Sequence[Any] = (), negative: Sequence[Any] = (), images: Sequence[Any] = ()) -> list[Term]:
    terms = [parse_term(t) for t in positive]
    terms += [parse_term(t, image=True) for t in images]
    terms += [parse_term(t, negative=True) for t in negative]
    if not any(t.weight > 0 for t in terms):
        raise InputError("a search needs at least one positive term: a text, or an image (--image PATH)")
    return terms


def query_vector(terms: Sequence[Term], encoder: Encoder) -> np.ndarray:
    """The combined, normalised query embedding."""
    texts = [t for t in terms if t.text is not None]
    images = [t for t in terms if t.text is None]
    total = np.zeros(encoder.dim, dtype=np.float32)
    if texts:
        emb = encoder.encode_texts([t.text for t in texts if t.text is not None], truncate=True)
        total += (np.array([t.weight for t in texts], np.float32)[:, None] * emb).sum(axis=0)
    if images:
        emb = encoder.encode_images([t.image for t in images])
        total += (np.array([t.weight for t in images], np.float32)[:, None] * emb).sum(axis=0)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise InputError("the query terms cancel out (positive and negative terms are the same); change a weight")
    return total / norm
