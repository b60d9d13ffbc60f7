"""ImageNet-1k class names and definitions, read from the files timm ships in ``timm/data/_info/``."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from polymodal.models.lite.files import imagenet_info_dir


@dataclass(frozen=True)
class ImageNetClass:
    index: int
    synset: str  # WordNet id, e.g. n02123045
    lemmas: tuple[str, ...]  # e.g. ("tabby", "tabby cat")
    definition: str

    @property
    def name(self) -> str:
        return self.lemmas[0]


def _read_tsv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            key, _, value = line.rstrip("\n").partition("\t")
            out[key] = value
    return out


@functools.cache
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1000 classes in the order of the classifier's outputs."""
    info = imagenet_info_dir()
    synsets = (info / "imagenet_synsets.txt").read_text(encoding="utf-8").split()
    lemmas = _read_tsv(info / "imagenet_synset_to_lemma.txt")
    definitions = _read_tsv(info / "imagenet_synset_to_definition.txt")
    return tuple(
        ImageNetClass(
            index=i,
            synset=s,
            lemmas=tuple(x.strip() for x in lemmas[s].split(",") if x.strip()),
            definition=definitions.get(s, ""),
        )
        for i, s in enumerate(synsets)
    )
