"""EfficientNet-Lite0's last feature map, kept spatial: the one place other rooms read it from.

The pooled 1280-d feature the classifier uses is the mean of this map over its cells, so the map's cells
carry the same meaning as the image, one cell at a time. That makes it the input of class-activation maps
(Zhou et al., CVPR 2016, "Learning Deep Features for Discriminative Localization": a class's score map is
its classifier row applied to each cell) and of cell tokens for fusion (7 x 7 at the 224-pixel input).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from polymodal.models.lite.efficientnet import EfficientNetLite

#: the network's total stride: a side of S pixels gives a map side of ceil(S / 32)
STRIDE = 32
#: Lite0's input scaling: RGB in [0, 255] mapped by (x - MEAN) / STD
MEAN = 127.0
STD = 128.0


def lite_pixels(image: Any, width: int, height: int) -> np.ndarray:
    """One decoded RGB PIL image resized to ``width`` x ``height`` (no crop) as a (3, H, W) float32 network input."""
    from PIL import Image

    resized = image.convert("RGB").resize((int(width), int(height)), Image.Resampling.BICUBIC)
    arr = np.asarray(resized, dtype=np.float32)
    return ((arr - MEAN) / STD).transpose(2, 0, 1).copy()


def lite_feature_map(encoder: Any, pixels: np.ndarray) -> np.ndarray:
    """The last feature map (after the head convolution, before pooling) of a batch: (N, 1280, h, w) float32.

    ``encoder``: a torch-backed ``lite`` encoder (``load_model("lite", runtime="torch")``, whose
    ``.classifier`` is the torch EfficientNet-Lite0), or the ``EfficientNetLite`` module itself.
    ``pixels``: (N, 3, H, W) or (3, H, W) in the network's input scaling (``lite_pixels``); any H and W,
    since the network is fully convolutional up to the pooling.
    """
    import torch

    net: EfficientNetLite = getattr(encoder, "classifier", encoder)
    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    param = next(net.parameters())
    with torch.inference_mode():
        fmap = _forward_map(net, torch.from_numpy(x).to(param.device, param.dtype))
    return fmap.float().cpu().numpy()


def _forward_map(net: EfficientNetLite, x: Any) -> Any:
    # The same layers as EfficientNetLite.features, without the final mean: keep them in step with it.
    import torch.nn.functional as F

    x = F.relu6(net._bn0(net._conv_stem(x)))
    for block in net._blocks:
        x = block(x)
    return F.relu6(net._bn1(net._conv_head(x)))


def classifier_weights(encoder: Any) -> tuple[np.ndarray, np.ndarray]:
    """The ImageNet classifier's rows and biases, (1000, 1280) and (1000,), as float32 arrays."""
    net: EfficientNetLite = getattr(encoder, "classifier", encoder)
    weight = net._fc.weight.detach().float().cpu().numpy()
    bias = net._fc.bias.detach().float().cpu().numpy()
    return weight, bias
