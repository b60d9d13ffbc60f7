"""Image-to-tensor preprocessing shared by backends that do not bring their own processor.

It is OpenAI CLIP's recipe (resize the short side with bicubic filtering, centre crop, scale to [0, 1],
normalise per channel), done with PIL so that it needs no torchvision and gives the same pixels as
torchvision's ``Resize`` on a PIL image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImageTransform:
    """Resize the short side to ``resize``, centre-crop ``crop``, map pixels p in [0, 255] to (p/255 - mean)/std.

    With ``scale=255`` and mean/std of 127/128 it gives EfficientNet-Lite's ``(x - 127) / 128``.
    """

    resize: int
    crop: int
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD
    scale: float = 1.0  # pixel range the mean/std are given in: 1.0 for [0, 1], 255.0 for [0, 255]

    def to_array(self, image: Any) -> np.ndarray:
        """CHW float32 array."""
        from PIL import Image

        img = image if image.mode == "RGB" else image.convert("RGB")
        w, h = img.size
        s = self.resize / min(w, h)
        # round() like torchvision; max(1, ...) keeps extreme panoramas from collapsing to zero width.
        size = (max(1, round(w * s)), max(1, round(h * s)))
        if size != (w, h):
            img = img.resize(size, Image.Resampling.BICUBIC)
        w, h = img.size
        left = round((w - self.crop) / 2.0)
        top = round((h - self.crop) / 2.0)
        img = img.crop((left, top, left + self.crop, top + self.crop))
        pixels = np.asarray(img, dtype=np.float32) * np.float32(self.scale / 255.0)
        out = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)

    def __call__(self, image: Any) -> Any:
        """CHW float32 torch tensor, like torchvision's transforms return."""
        import torch

        return torch.from_numpy(self.to_array(image))
