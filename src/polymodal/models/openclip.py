"""open_clip backend: ``open_clip:<arch>/<pretrained tag>``, ``open_clip:hf-hub:org/repo``, or a directory
holding ``open_clip_config.json`` and its weights (open_clip's ``local-dir:`` format)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import MissingDependencyError, ModelLoadError, ModelSpecError, TextTooLongError
from polymodal.models.base import Network, TorchCLIPEncoder
from polymodal.models.safeweights import require_safetensors


def detect_dir(path: Path) -> bool:
    return (path / "open_clip_config.json").is_file()


def source_files(spec: Any) -> list[Path] | None:
    """A local directory's files, or a cached ``hf-hub:`` model's; an ``arch/tag`` name is found only through
    open_clip's own table (which imports torch), so its identity is its name and open_clip's version."""
    target = spec.target
    if target.startswith("local-dir:"):
        target = target.removeprefix("local-dir:")
    path = Path(target).expanduser()
    if path.is_dir():
        return sorted(f for f in path.iterdir() if f.is_file() and f.suffix in (".json", ".safetensors", ".txt"))
    if target.startswith("hf-hub:"):
        from huggingface_hub import try_to_load_from_cache

        repo = target.removeprefix("hf-hub:")
        names = ("open_clip_config.json", "open_clip_model.safetensors", "tokenizer.json", "tokenizer_config.json")
        found = [try_to_load_from_cache(repo, n) for n in names]
        files = [Path(f).resolve() for f in found if isinstance(f, str)]
        return files if len(files) >= 2 else None
    if "/" in target:
        return []  # the identity is then (scheme, name, package versions)
    return None


def open_clip_name(target: str) -> tuple[str, str | None]:
    """Split our target into open_clip's (model_name, pretrained) pair."""
    if target.startswith(("hf-hub:", "local-dir:")):
        return target, None
    if Path(target).expanduser().is_dir():
        return f"local-dir:{Path(target).expanduser().resolve()}", None
    arch, sep, tag = target.partition("/")
    if not sep or not arch or not tag:
        raise ModelSpecError(
            f"open_clip spec {target!r} needs an architecture and a pretrained tag, e.g. "
            "open_clip:ViT-B-32/laion2b_s34b_b79k (see `polymodal models` for the list)"
        )
    return arch, tag


def _import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError("open_clip_torch", "open_clip models") from exc
    return open_clip


def _hub_file_cached(hub: str) -> bool:
    """open_clip's ``hf_hub`` is "org/repo/" or "org/repo/filename"; is that weight file cached?"""
    from huggingface_hub import try_to_load_from_cache

    parts = hub.split("/")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    try:
        return any(isinstance(try_to_load_from_cache(repo, n), str) for n in names)
    except ValueError:  # a malformed id in open_clip's table: not cached, by definition
        return False


def list_known() -> list:
    from polymodal.models.registry import ModelEntry

    open_clip = _import_open_clip()
    out = []
    for arch, tag in open_clip.list_pretrained():
        hub = (open_clip.get_pretrained_cfg(arch, tag) or {}).get("hf_hub", "").strip("/")
        cached = bool(hub) and _hub_file_cached(hub)
        out.append(ModelEntry(f"open_clip:{arch}/{tag}", "open_clip", f"open_clip {arch} trained on {tag}", cached))
    return out


class OpenCLIPEncoder(TorchCLIPEncoder):
    backend = "open_clip"

    def __init__(
        self, target: str, name: str, device: str | None = None, batch_size: int | None = None,
        fast_preprocess: bool = True,
    ) -> None:
        super().__init__(name, device, batch_size)
        # open_clip's transform is PIL-based already; the fast path only adds reduced-size JPEG decoding.
        self.fast_preprocess = fast_preprocess
        open_clip = _import_open_clip()
        model_name, pretrained = open_clip_name(target)
        if model_name.startswith("local-dir:"):
            require_safetensors(model_name.removeprefix("local-dir:"), f"model {name}")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=self.device
            )
            self.tokenizer = open_clip.get_tokenizer(model_name)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot load open_clip model {name}: {exc}") from None
        self.model = model.eval()
        self.preprocess = preprocess
        self._context = int(getattr(self.tokenizer, "context_length", 77))
        # Architectures name their width in different config fields; one tiny forward pass is unambiguous.
        import torch

        with torch.inference_mode():
            self._dim = int(self.model.encode_text(self.tokenizer(["a"]).to(self.device)).shape[-1])

    @property
    def input_size(self) -> int | None:
        if not self.fast_preprocess:
            return None
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    def preprocess_image(self, image: Any) -> Any:
        return self.preprocess(image)

    def _check_lengths(self, texts: list[str]) -> None:
        encode = getattr(self.tokenizer, "encode", None)
        if encode is None:
            return
        for text in texts:
            n = len(encode(text)) + 2  # start and end tokens
            if n > self._context:
                raise TextTooLongError(text, self._context, n)

    def text_inputs(self, texts: list[str], truncate: bool) -> dict[str, np.ndarray]:
        if not truncate:
            self._check_lengths(texts)
        return {"input_ids": self.tokenizer(texts).numpy().astype(np.int64)}

    def build_networks(self) -> dict[str, Network]:
        from polymodal.models.towers import Tower

        return {
            "image": Network(Tower(self.model.encode_image), {"pixel_values": {0: "batch"}}),
            "text": Network(Tower(self.model.encode_text), {"input_ids": {0: "batch"}}),
        }


def load(spec: Any, device: str | None = None, batch_size: int | None = None, **options: Any) -> OpenCLIPEncoder:
    return OpenCLIPEncoder(spec.target, str(spec.raw), device=device, batch_size=batch_size, **options)
