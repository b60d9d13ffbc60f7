"""Per-modality score scales for fusion: how a query scores against content unrelated to it.

Normalising a modality by the scores of its own candidates fails on small libraries: with two transcript
segments, one is always "best" by a full standard deviation, however unrelated both are. Instead each
query is also scored against a fixed background per modality, embedded once per encoder:

- visual: ``models.base.sample_images`` (deterministic synthetic pictures: gradients and shapes);
- speech: everyday sentences on unrelated subjects (below).

A unit's normalised score is then (cosine - background mean) / background spread: how far it stands out from
what the same query scores on unrelated material of the same modality, whatever the library holds and
whatever the scale of that modality's cosines.
"""

from __future__ import annotations

import threading

import numpy as np

from polymodal.models.base import Encoder, sample_images

BACKGROUND_SENTENCES = (
    "I think we should leave a little earlier tomorrow.",
    "Can you send me the numbers before the meeting?",
    "The weather was much colder than we expected.",
    "She has been working on that project for two years.",
    "Let me know if you need anything else from me.",
    "We ran out of milk, so I went to the shop.",
    "That was the best concert I have been to in a long time.",
    "He forgot his keys again and had to wait outside.",
    "The new version fixes most of the problems we found.",
    "Thank you all for coming, let's get started.",
    "My sister moved to another city last spring.",
    "If the price goes up again we will look elsewhere.",
    "I'm not sure this is the right way to do it.",
    "The children were playing in the garden all afternoon.",
    "Please turn off the lights when you leave the room.",
    "We should have booked the tickets much earlier.",
    "The report shows a small increase in sales this quarter.",
    "Do you remember where we parked the car?",
    "It took us three hours to get through the traffic.",
    "I'll call you back as soon as I hear anything.",
    "The soup needs a bit more salt, I think.",
    "They are planning to renovate the old library next year.",
    "Could you speak a little louder, please?",
    "Most of the team agreed with the new schedule.",
    "I have never seen so many people in this square.",
    "The battery died halfway through the film.",
    "Let's take a short break and continue in ten minutes.",
    "He explained the rules of the game very patiently.",
    "Our flight was delayed because of the storm.",
    "This recipe is much easier than it looks.",
    "I don't think anyone noticed the mistake.",
    "The museum is closed on Mondays.",
)

#: bump when the backgrounds change, so embeddings stored in exported bundles are not reused
BACKGROUND_VERSION = 1

_lock = threading.Lock()
_cache: dict[tuple[int, str], dict[str, np.ndarray]] = {}


def compute_backgrounds(encoder: Encoder) -> dict[str, np.ndarray]:
    return {
        "visual": encoder.encode_images(sample_images(32)),
        "speech": encoder.encode_texts(list(BACKGROUND_SENTENCES), truncate=True),
    }


def backgrounds(encoder: Encoder) -> dict[str, np.ndarray]:
    """Normalised background embeddings per modality for ``encoder``: an exported bundle carries them (a search
    then embeds no picture), else they are computed once per encoder object."""
    key = (id(encoder), encoder.name)
    with _lock:
        if key not in _cache:
            stored = getattr(encoder, "backgrounds", None)
            found = stored() if callable(stored) else None
            _cache[key] = found if found is not None else compute_backgrounds(encoder)
        return _cache[key]


def reference_scores(query: np.ndarray, encoder: Encoder) -> dict[str, list[float]]:
    """The query's cosines against each modality's background: the mean and spread used to normalise."""
    q = np.asarray(query, np.float32)
    return {mod: (emb @ q).astype(float).tolist() for mod, emb in backgrounds(encoder).items()}
