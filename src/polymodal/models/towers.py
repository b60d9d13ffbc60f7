"""The torch modules that wrap a backend's towers for export: one forward pass, named inputs, one output.

Kept apart from the backend modules so that naming or detecting a model (``hf.detect_dir``, ``source_files``)
imports no torch.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from polymodal.models.hf import _features


class HFImageTower(nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: Any) -> Any:
        return _features(self.model.get_image_features(pixel_values=pixel_values))


class HFTextTower(nn.Module):
    def __init__(self, model: Any, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Any:
        # Explicit arguments, not *args: torch.export matches dynamic shapes to the signature.
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return _features(self.model.get_text_features(**{n: given[n] for n in self.names}))


class Tower(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn
        self.model = fn.__self__  # registered, so the weights belong to this module's state dict

    def forward(self, x: Any) -> Any:
        return self.fn(x)
