"""transformers backend: CLIPModel, SiglipModel and ChineseCLIPModel checkpoints from the hub or a directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import MissingDependencyError, ModelLoadError, TextTooLongError
from polymodal.models.base import Network, TorchCLIPEncoder
from polymodal.models.preprocess import ImageTransform
from polymodal.models.safeweights import require_safetensors

#: transformers ``model_type`` -> (model class name, how texts are padded)
SUPPORTED: dict[str, tuple[str, str]] = {
    "clip": ("CLIPModel", "longest"),
    # SigLIP was trained on texts padded to the full length; shorter padding changes its embeddings.
    "siglip": ("SiglipModel", "max_length"),
    "chinese_clip": ("ChineseCLIPModel", "longest"),
}

KNOWN = (
    ("openai/clip-vit-base-patch32", "OpenAI CLIP ViT-B/32 (the default)"),
    ("openai/clip-vit-base-patch16", "OpenAI CLIP ViT-B/16"),
    ("openai/clip-vit-large-patch14", "OpenAI CLIP ViT-L/14"),
    ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "LAION-2B ViT-B/32"),
    ("google/siglip-base-patch16-224", "SigLIP base 224"),
    ("OFA-Sys/chinese-clip-vit-base-patch16", "Chinese-CLIP ViT-B/16"),
)


def detect_dir(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") in SUPPORTED
    except (OSError, ValueError):
        return False


def is_cached(repo_id: str) -> bool:
    """Whether a hub model's config and weights are in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return False
    return isinstance(try_to_load_from_cache(repo_id, "model.safetensors"), str)  # pickles are not loaded


def list_known() -> list:
    from polymodal.models.registry import ModelEntry

    return [ModelEntry(f"hf:{repo}", "hf", desc, is_cached(repo)) for repo, desc in KNOWN]


def quiet_transformers() -> None:
    """The library does not print: silence transformers' weight-loading bars and advisory logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class HFEncoder(TorchCLIPEncoder):
    backend = "hf"

    def __init__(
        self, target: str, name: str, device: str | None = None, batch_size: int | None = None,
        fast_preprocess: bool = True,
    ) -> None:
        super().__init__(name, device, batch_size)
        try:
            import transformers
            from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise MissingDependencyError("transformers", f"model {name}") from exc
        quiet_transformers()
        require_safetensors(target, f"model {name}")
        try:
            config = AutoConfig.from_pretrained(target)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load model {name}: {exc}. If it is a hub id, check the spelling and that it is cached "
                "or the hub is reachable; if it is a directory, check it holds config.json"
            ) from None
        if config.model_type not in SUPPORTED:
            raise ModelLoadError(
                f"model {name} is a {config.model_type!r} model; the hf backend loads {sorted(SUPPORTED)}"
            )
        class_name, self.padding = SUPPORTED[config.model_type]
        try:
            # use_safetensors: never fall back to a pickled pytorch_model.bin, from a directory or the hub
            model = getattr(transformers, class_name).from_pretrained(target, use_safetensors=True)
            self.model = model.eval().to(self.device)
            self.tokenizer = AutoTokenizer.from_pretrained(target)
            self.processor = AutoImageProcessor.from_pretrained(target)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load model {name}: {exc}") from None
        self.model_type = config.model_type
        self.target = target
        text_cfg = config.text_config
        limit = getattr(self.tokenizer, "model_max_length", None)
        max_pos = int(getattr(text_cfg, "max_position_embeddings", 77))
        # Tokenizers without a limit report a huge sentinel; the position table is the real bound.
        self._context = min(limit, max_pos) if isinstance(limit, int) and limit < 100_000 else max_pos
        self._dim = int(getattr(config, "projection_dim", None) or text_cfg.hidden_size)
        self.transform = pil_transform(self.processor) if fast_preprocess else None

    @property
    def input_size(self) -> int | None:
        return self.transform.crop if self.transform else None

    def preprocess_image(self, image: Any) -> Any:
        if self.transform is not None:
            return self.transform(image)
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def text_inputs(self, texts: list[str], truncate: bool) -> dict[str, np.ndarray]:
        if not truncate:
            for text, ids in zip(texts, self.tokenizer(texts, truncation=False)["input_ids"]):
                if len(ids) > self._context:
                    raise TextTooLongError(text, self._context, len(ids))
        enc = self.tokenizer(
            texts, padding=self.padding, truncation=True, max_length=self._context, return_tensors="np"
        )
        names = ["input_ids"]
        if self.model_type != "siglip":  # SigLIP attends to its padding, as in training (no mask given)
            names.append("attention_mask")
        if self.model_type == "chinese_clip":
            names.append("token_type_ids")
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        # A tokenizer that gives no segment ids means a single segment: zeros, as BERT assumes.
        return {n: np.asarray(enc[n], dtype=np.int64) if n in enc else np.zeros_like(ids) for n in names}

    def weights_identity(self) -> str:
        files = _weight_files(self.target)
        if not files:
            return super().weights_identity()
        from polymodal.models.runtime import files_identity

        return files_identity(files)

    def tokenize(self, texts: list[str], truncate: bool) -> dict[str, Any]:
        """``text_inputs`` as torch tensors, for training code that calls the model directly."""
        import torch

        return {k: torch.as_tensor(v) for k, v in self.text_inputs(texts, truncate).items()}

    @staticmethod
    def _features(out: Any) -> Any:
        return _features(out)

    def build_networks(self) -> dict[str, Network]:
        text_names = ["input_ids"] + (["attention_mask"] if self.model_type != "siglip" else [])
        if self.model_type == "chinese_clip":
            text_names.append("token_type_ids")
        from polymodal.models.towers import HFImageTower, HFTextTower

        return {
            "image": Network(HFImageTower(self.model), {"pixel_values": {0: "batch"}}),
            "text": Network(HFTextTower(self.model, text_names), {n: {0: "batch", 1: "tokens"} for n in text_names}),
        }


def _features(out: Any) -> Any:
    # transformers 5 returns a model output whose pooler_output holds the projected features.
    return out if hasattr(out, "shape") else out.pooler_output


def source_files(spec: Any) -> list[Path] | None:
    """The weight, config, tokenizer and processor files of a directory or a cached hub model."""
    path = Path(spec.target).expanduser()
    if path.is_dir():
        return sorted(f for f in path.iterdir() if f.is_file() and f.suffix in (".json", ".safetensors", ".txt",
                                                                                  ".model", ".bin"))
    files = _weight_files(spec.target)
    if not files:
        return None  # not cached: the first load downloads it, through transformers
    names = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "vocab.txt",
             "spiece.model", "preprocessor_config.json", "special_tokens_map.json")
    from huggingface_hub import try_to_load_from_cache

    extra = [try_to_load_from_cache(spec.target, n) for n in names]
    return files + [Path(f).resolve() for f in extra if isinstance(f, str)]


def _weight_files(target: str) -> list[Path]:
    """The weight and config files a model was loaded from: a directory's, or the hub cache's (whose blob
    names are content hashes, so a new revision is a new path)."""
    path = Path(target).expanduser()
    names = ("config.json", "model.safetensors", "pytorch_model.bin")
    if path.is_dir():
        return [f for f in (*path.glob("*.safetensors"), *path.glob("*.bin"), path / "config.json") if f.is_file()]
    try:
        from huggingface_hub import try_to_load_from_cache

        found = [try_to_load_from_cache(target, n) for n in names]
    except ValueError:
        return []
    return [Path(f).resolve() for f in found if isinstance(f, str)]


def pil_transform(processor: Any) -> ImageTransform | None:
    """Our PIL transform when it computes what ``processor`` computes (resize short side, centre crop,
    rescale, normalise): CLIP's and Chinese-CLIP's processors. Others (SigLIP's squash resize) keep theirs."""
    size = getattr(processor, "size", None) or {}
    crop = getattr(processor, "crop_size", None) or {}
    if not (
        "shortest_edge" in size
        and getattr(processor, "do_center_crop", False)
        and crop.get("height") == crop.get("width")
        and getattr(processor, "do_resize", True)
        and getattr(processor, "do_normalize", True)
        and abs(float(getattr(processor, "rescale_factor", 1 / 255)) - 1 / 255) < 1e-9
    ):
        return None
    return ImageTransform(
        resize=int(size["shortest_edge"]), crop=int(crop["height"]),
        mean=tuple(float(x) for x in processor.image_mean), std=tuple(float(x) for x in processor.image_std),
    )


def load(spec: Any, device: str | None = None, batch_size: int | None = None, **options: Any) -> HFEncoder:
    return HFEncoder(spec.target, str(spec.raw), device=device, batch_size=batch_size, **options)
