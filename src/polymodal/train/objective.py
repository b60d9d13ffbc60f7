"""The contrastive objective: symmetric InfoNCE with a learnable temperature, clamped as CLIP does.

InfoNCE (van den Oord et al. 2018) in both directions, image->text and text->image, averaged: the loss of
CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision"). The
temperature is learned as a log logit scale and clamped so the scale never exceeds 100, which CLIP found
keeps training stable (open_clip clamps the parameter to [0, ln 100] the same way).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_LOGIT_SCALE = 100.0


def clip_loss(image: torch.Tensor, text: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch whose i-th image and i-th text are the positive pair."""
    image = F.normalize(image.float(), dim=-1)
    text = F.normalize(text.float(), dim=-1)
    logits = log_scale.float().exp() * image @ text.t()
    target = torch.arange(len(image), device=image.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


@torch.no_grad()
def clamp_logit_scale(log_scale: torch.Tensor) -> None:
    log_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))
