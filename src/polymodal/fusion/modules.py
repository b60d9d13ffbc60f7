"""Fusion modules: h = f(g_1(x_1), ..., g_n(x_n)) for frozen encoder features g_i(x_i).

Every module has one interface: ``forward(features, present)`` where ``features`` is a list of (B, D_m)
tensors in the order of ``config.modalities`` (zeros where a modality is missing) and ``present`` is a (B, M)
bool mask. Missing modalities are masked explicitly — dropped from attention, gates and head combinations —
rather than fed in as if a zero vector were evidence (Baltrušaitis et al. 2019, "Multimodal Machine Learning:
A Survey and Taxonomy", §5 on fusion). The output names the fused logits and, where a model has them, the
per-modality head logits a trainer can give their own loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

#: ways early fusion joins the modality vectors
EARLY_COMBINE = ("concat", "product", "gated")
#: what early fusion runs over the modality tokens before joining them
EARLY_JOINT = ("mlp", "transformer")
#: ways late and hybrid fusion combine per-modality head logits
HEAD_COMBINE = ("mean", "weighted", "poe")


@dataclass(frozen=True)
class FusionConfig:
    """Everything needed to rebuild a fusion model; saved as JSON beside its weights."""

    kind: str  # registry name: early, late, hybrid
    modalities: tuple[str, ...]  # order of the feature list, e.g. ("image", "text")
    dims: tuple[int, ...]  # feature width of each modality
    num_classes: int
    hidden: int = 128  # shared width every modality is projected to
    combine: str = "concat"  # early: concat | product | gated
    joint: str = "mlp"  # early: mlp | transformer (a small transformer over modality tokens first)
    head_combine: str = "mean"  # late/hybrid: mean | weighted | poe (product of experts)
    tokens: int = 4  # tokens each modality vector is split into for attention (hybrid, early transformer)
    heads: int = 4  # attention heads
    layers: int = 1  # transformer / cross-attention layers
    dropout: float = 0.1
    extra: dict[str, Any] = field(default_factory=dict)  # options of plugin fusion modules

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d["dims"] = list(self.dims)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionConfig:
        d = dict(d)
        d["modalities"] = tuple(d["modalities"])
        d["dims"] = tuple(int(x) for x in d["dims"])
        return cls(**d)


@dataclass
class FusionOutput:
    logits: torch.Tensor  # (B, C) fused class logits (log-probabilities for product of experts)
    head_logits: torch.Tensor | None = None  # (B, M, C) per-modality heads, where the model has them


def _mlp(inp: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out))


def combine_heads(logits: torch.Tensor, present: torch.Tensor, how: str, weights: torch.Tensor | None) -> torch.Tensor:
    """Combine (B, M, C) head logits over the present modalities only.

    mean: average of logits; weighted: softmax of learned per-modality weights, renormalised over the
    present ones; poe: product of experts (Hinton 2002), the sum of per-head log-probabilities, so each
    present modality multiplies in its distribution and an absent one contributes the uniform factor 1.
    """
    mask = present.to(logits.dtype).unsqueeze(-1)  # (B, M, 1)
    if how == "poe":
        return (torch.log_softmax(logits, dim=-1) * mask).sum(1)
    if how == "weighted":
        assert weights is not None
        w = weights.unsqueeze(0).expand(present.shape).masked_fill(~present, -math.inf)
        w = torch.softmax(w, dim=1).nan_to_num(0.0).unsqueeze(-1)  # a row with nothing present gets zeros
        return (logits * w).sum(1)
    return (logits * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class Tokeniser(nn.Module):
    """Projects each modality vector to ``tokens`` tokens of the shared width, tagged with a modality embedding."""

    def __init__(self, dims: tuple[int, ...], hidden: int, tokens: int) -> None:
        super().__init__()
        self.tokens = tokens
        self.hidden = hidden
        self.proj = nn.ModuleList(nn.Linear(d, hidden * tokens) for d in dims)
        self.modality = nn.Parameter(torch.randn(len(dims), 1, hidden) * 0.02)
        self.position = nn.Parameter(torch.randn(1, tokens, hidden) * 0.02)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, M, T, H) tokens."""
        out = []
        for m, (x, proj) in enumerate(zip(features, self.proj)):
            t = proj(x).view(x.shape[0], self.tokens, self.hidden)
            out.append(self.norm(t + self.modality[m] + self.position))
        return torch.stack(out, dim=1)


class FusionModel(nn.Module):
    """Base of every fusion module: holds its config; subclasses implement ``forward``."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, features: list[torch.Tensor], present: torch.Tensor) -> FusionOutput:  # pragma: no cover
        raise NotImplementedError


class EarlyFusion(FusionModel):
    """Join features first, then learn one joint model (Snoek et al. 2005, "Early versus late fusion").

    Each modality is projected to a shared width; optionally a small transformer mixes the modality tokens
    (missing ones are padding it cannot attend to); then the vectors are joined by concatenation, by an
    element-wise product (multiplicative interactions, as in bilinear pooling without its size), or by a
    gated sum (Arevalo et al. 2017, "Gated Multimodal Units for Information Fusion"), and a joint MLP
    classifies. Concatenation also gets the presence mask, so "text missing" is an input, not a zero guess.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        c = config
        m, h = len(c.modalities), c.hidden
        tokens = c.tokens if c.joint == "transformer" else 1
        self.tokeniser = Tokeniser(c.dims, h, tokens)
        self.transformer: nn.Module | None = None
        if c.joint == "transformer":
            layer = nn.TransformerEncoderLayer(h, c.heads, 2 * h, c.dropout, batch_first=True, norm_first=True)
            self.transformer = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        if c.combine == "gated":
            self.gate = nn.Linear(m * h, m)
        joined = m * h + m if c.combine == "concat" else h
        self.head = _mlp(joined, h, c.num_classes, c.dropout)

    def forward(self, features: list[torch.Tensor], present: torch.Tensor) -> FusionOutput:
        tokens = self.tokeniser(features)  # (B, M, T, H)
        b, m, t, h = tokens.shape
        if self.transformer is not None:
            pad = (~present).repeat_interleave(t, dim=1)  # (B, M*T): True = ignore
            # A row with every modality missing would leave attention nothing; let it see its (zero) tokens.
            pad = pad & ~pad.all(dim=1, keepdim=True)
            mixed = self.transformer(tokens.reshape(b, m * t, h), src_key_padding_mask=pad)
            tokens = mixed.reshape(b, m, t, h)
        vec = tokens.mean(2)  # (B, M, H)
        mask = present.to(vec.dtype).unsqueeze(-1)
        if self.config.combine == "product":
            joined = torch.where(mask.bool(), vec, torch.ones_like(vec)).prod(1)  # missing = identity factor
        elif self.config.combine == "gated":
            g = self.gate((vec * mask).flatten(1)).masked_fill(~present, -math.inf)
            g = torch.softmax(g, dim=1).nan_to_num(0.0).unsqueeze(-1)
            joined = (torch.tanh(vec) * g).sum(1)
        else:
            joined = torch.cat([(vec * mask).flatten(1), present.to(vec.dtype)], dim=1)
        return FusionOutput(self.head(joined))


class LateFusion(FusionModel):
    """One classifier per modality; their logits are combined, never their features.

    Each head sees one modality only, so late fusion cannot learn interactions between modalities (it stays
    at chance on a task like "does the text name the image's colour"), but a missing modality just drops
    out of the combination, which is why it degrades gracefully.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        c = config
        self.heads = nn.ModuleList(_mlp(d, c.hidden, c.num_classes, c.dropout) for d in c.dims)
        self.weights = nn.Parameter(torch.zeros(len(c.dims)))  # used by head_combine="weighted"

    def forward(self, features: list[torch.Tensor], present: torch.Tensor) -> FusionOutput:
        logits = torch.stack([head(x) for head, x in zip(self.heads, features)], dim=1)  # (B, M, C)
        return FusionOutput(combine_heads(logits, present, self.config.head_combine, self.weights), logits)


class CrossAttentionLayer(nn.Module):
    """Tokens of each modality attend to the tokens of the other present modalities (and a null token).

    The learned null token is always there to attend to, so a row whose other modalities are all missing
    gets a defined, learned "nothing to add" instead of a softmax over an empty set (NaN).
    """

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.null = nn.Parameter(torch.zeros(1, 1, hidden))
        self.norm1 = nn.LayerNorm(hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.ff = _mlp(hidden, 2 * hidden, hidden, dropout)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, m, t, h = tokens.shape
        null = self.null.expand(b, 1, h)
        out = []
        for i in range(m):
            others = [j for j in range(m) if j != i]
            keys = torch.cat([null, tokens[:, others].reshape(b, len(others) * t, h)], dim=1)
            pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=tokens.device),
                             (~present[:, others]).repeat_interleave(t, dim=1)], dim=1)
            q = self.norm1(tokens[:, i])
            kv = self.norm1(keys)
            x = tokens[:, i] + self.attn(q, kv, kv, key_padding_mask=pad, need_weights=False)[0]
            out.append(x + self.ff(self.norm2(x)))
        return torch.stack(out, dim=1)


class HybridFusion(FusionModel):
    """Cross-modal attention between modality token sequences, then a head per modality plus a joint head.

    In the spirit of co-attention models (Lu et al. 2019, ViLBERT; Tsai et al. 2019, "Multimodal Transformer
    for Unaligned Multimodal Language Sequences"): features interact early through attention, and decisions
    are still made per modality and combined late, so a missing modality drops out of both levels.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        c = config
        self.tokeniser = Tokeniser(c.dims, c.hidden, c.tokens)
        self.layers = nn.ModuleList(CrossAttentionLayer(c.hidden, c.heads, c.dropout) for _ in range(c.layers))
        self.heads = nn.ModuleList(_mlp(c.hidden, c.hidden, c.num_classes, c.dropout) for _ in c.dims)
        self.joint = _mlp(len(c.dims) * c.hidden, c.hidden, c.num_classes, c.dropout)
        self.weights = nn.Parameter(torch.zeros(len(c.dims) + 1))

    def forward(self, features: list[torch.Tensor], present: torch.Tensor) -> FusionOutput:
        tokens = self.tokeniser(features)
        for layer in self.layers:
            tokens = layer(tokens, present)
        vec = tokens.mean(2)  # (B, M, H)
        heads = torch.stack([head(vec[:, i]) for i, head in enumerate(self.heads)], dim=1)
        joint = self.joint((vec * present.to(vec.dtype).unsqueeze(-1)).flatten(1)).unsqueeze(1)
        # The joint head is one more expert, present whenever any modality is.
        everything = torch.cat([heads, joint], dim=1)
        mask = torch.cat([present, present.any(dim=1, keepdim=True)], dim=1)
        return FusionOutput(combine_heads(everything, mask, self.config.head_combine, self.weights), heads)
