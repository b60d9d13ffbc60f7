"""Fusion modules: h = f(g_1(x_1), ..., g_n(x_n)) for frozen encoder features g_i(x_i).

Every module has one interface: ``forward(features, present, tokens=None)`` where ``features`` is a list of
(B, D_m) pooled tensors in the order of ``config.modalities`` (zeros where a modality is missing), ``present``
is a (B, M) bool mask and ``tokens``, for feature kind "tokens", gives each modality's (B, T, D) token
sequence and its (B, T) validity (None where the encoder has no tokens for it). Early and late fusion use the
pooled features; hybrid fusion attends over the tokens. Missing modalities are masked explicitly — dropped
from attention, gates and head combinations — rather than fed in as if a zero vector were evidence
(Baltrušaitis et al. 2019, "Multimodal Machine Learning: A Survey and Taxonomy", §5 on fusion). The output
names the fused logits and, where a model has them, the per-modality head logits a trainer can give their
own loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from polymodal.fusion.extract import TokenLayout

#: one modality's tokens in a batch: (B, T, D) values and (B, T) validity
Tokens = tuple[torch.Tensor, torch.Tensor]

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
    # hybrid: each modality's token layout (feature kind "tokens"); None or absent = tokenise the pooled vector
    token_layouts: tuple[TokenLayout | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d["dims"] = list(self.dims)
        d["token_layouts"] = [None if t is None else {"dim": t.dim, "grid": None if t.grid is None else list(t.grid),
                                                      "length": t.length} for t in self.token_layouts]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionConfig:
        d = dict(d)
        d["modalities"] = tuple(d["modalities"])
        d["dims"] = tuple(int(x) for x in d["dims"])
        d["token_layouts"] = tuple(
            None if t is None else TokenLayout(int(t["dim"]), None if t["grid"] is None else
                                               (int(t["grid"][0]), int(t["grid"][1])), int(t["length"]))
            for t in d.get("token_layouts", ()))
        return cls(**d)

    def layout(self, m: int) -> TokenLayout | None:
        return self.token_layouts[m] if m < len(self.token_layouts) else None


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
    """Base of every fusion module: holds its config and the standardisation of its pooled inputs.

    Pooled features mix scales (lite's image feature is a unit ConSE vector beside ReLU6 activations up to 6),
    so each input dimension is standardised with the training rows' mean and spread, kept as buffers so a
    checkpoint carries them; subclasses call ``standardise`` first and implement ``forward``.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        for m, d in enumerate(config.dims):
            self.register_buffer(f"in_mean{m}", torch.zeros(d))
            self.register_buffer(f"in_std{m}", torch.ones(d))

    def set_input_stats(self, means: list[torch.Tensor], stds: list[torch.Tensor]) -> None:
        for m, (mu, sd) in enumerate(zip(means, stds)):
            getattr(self, f"in_mean{m}").copy_(mu)
            getattr(self, f"in_std{m}").copy_(sd)

    def standardise(self, features: list[torch.Tensor], present: torch.Tensor) -> list[torch.Tensor]:
        """Standardised features; a missing modality stays all zeros (the mean), never a made-up value."""
        out = []
        for m, x in enumerate(features):
            z = (x - getattr(self, f"in_mean{m}")) / getattr(self, f"in_std{m}")
            out.append(z * present[:, m : m + 1].to(z.dtype))
        return out

    def forward(self, features: list[torch.Tensor], present: torch.Tensor,
                tokens: list[Tokens | None] | None = None) -> FusionOutput:  # pragma: no cover
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

    def forward(self, features: list[torch.Tensor], present: torch.Tensor,
                tokens_in: list[Tokens | None] | None = None) -> FusionOutput:
        tokens = self.tokeniser(self.standardise(features, present))  # (B, M, T, H)
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

    def forward(self, features: list[torch.Tensor], present: torch.Tensor,
                tokens: list[Tokens | None] | None = None) -> FusionOutput:
        features = self.standardise(features, present)
        logits = torch.stack([head(x) for head, x in zip(self.heads, features)], dim=1)  # (B, M, C)
        return FusionOutput(combine_heads(logits, present, self.config.head_combine, self.weights), logits)


class TokenEmbed(nn.Module):
    """One modality's tokens to the shared width: normalised, projected, tagged with their position.

    Image tokens get a learned row and a learned column embedding (summed, as in ViT's 2-D variant and
    DETR's factorised encoding): mean pooling has thrown away where things are, and without positions
    attention cannot get it back. Text tokens get a learned position each.
    """

    def __init__(self, layout: TokenLayout, hidden: int) -> None:
        super().__init__()
        self.layout = layout
        self.norm = nn.LayerNorm(layout.dim)
        self.proj = nn.Linear(layout.dim, hidden)
        if layout.grid is not None:
            rows, cols = layout.grid
            self.row = nn.Parameter(torch.randn(rows, 1, hidden) * 0.02)
            self.col = nn.Parameter(torch.randn(1, cols, hidden) * 0.02)
        else:
            self.pos = nn.Parameter(torch.randn(layout.length, hidden) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.norm(x))
        if self.layout.grid is not None:
            pos = (self.row + self.col).reshape(-1, h.shape[-1])
        else:
            pos = self.pos[: h.shape[1]]
        return h + pos


class VectorEmbed(nn.Module):
    """A pooled vector as ``tokens`` tokens of the shared width, for a modality its encoder gives no tokens."""

    def __init__(self, dim: int, hidden: int, tokens: int) -> None:
        super().__init__()
        self.tokens, self.hidden = tokens, hidden
        self.proj = nn.Linear(dim, hidden * tokens)
        self.pos = nn.Parameter(torch.randn(tokens, hidden) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).view(x.shape[0], self.tokens, self.hidden) + self.pos


def _open(pad: torch.Tensor) -> torch.Tensor:
    """A padding mask (True = ignore) with fully padded rows opened, so attention never sees an empty set."""
    return pad & ~pad.all(dim=1, keepdim=True)


class CrossAttentionLayer(nn.Module):
    """Each modality's tokens attend to themselves, then to the tokens of the other present modalities.

    Self-attention first lets a token gather its own modality's context (where the other shapes are); the
    cross-attention that follows always has a learned null token to attend to, so a row whose other modalities
    are all missing gets a defined, learned "nothing to add" instead of a softmax over an empty set (NaN).
    """

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.null = nn.Parameter(torch.zeros(1, 1, hidden))
        self.norm0 = nn.LayerNorm(hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.ff = _mlp(hidden, 2 * hidden, hidden, dropout)

    def forward(self, seqs: list[torch.Tensor], valid: list[torch.Tensor]) -> list[torch.Tensor]:
        """``seqs``: per modality (B, T_m, H); ``valid``: per modality (B, T_m), False for padding and for
        every token of a modality the row lacks."""
        b, h = seqs[0].shape[0], seqs[0].shape[-1]
        null = self.null.expand(b, 1, h)
        no_pad = torch.zeros(b, 1, dtype=torch.bool, device=seqs[0].device)
        out = []
        for i, x in enumerate(seqs):
            q = self.norm0(x)
            x = x + self.self_attn(q, q, q, key_padding_mask=_open(~valid[i]), need_weights=False)[0]
            others = [j for j in range(len(seqs)) if j != i]
            keys = torch.cat([null] + [seqs[j] for j in others], dim=1)
            pad = torch.cat([no_pad] + [~valid[j] for j in others], dim=1)
            q, kv = self.norm1(x), self.norm1(keys)
            x = x + self.attn(q, kv, kv, key_padding_mask=pad, need_weights=False)[0]
            out.append(x + self.ff(self.norm2(x)))
        return out


class HybridFusion(FusionModel):
    """Cross-modal attention between the modalities' token sequences, then a head per modality plus a joint
    head, their logits combined over the present modalities.

    In the spirit of co-attention models (Lu et al. 2019, ViLBERT; Tsai et al. 2019, "Multimodal Transformer
    for Unaligned Multimodal Language Sequences"): features interact early, token by token, and decisions
    are still made per modality and combined late, so a missing modality drops out of both levels. With
    feature kind "tokens" a modality's tokens are its encoder's (image cells with 2-D positions, text token
    states); otherwise its pooled vector is split into ``tokens`` learned tokens.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        c = config
        self.embed = nn.ModuleList(
            TokenEmbed(lay, c.hidden) if (lay := c.layout(m)) is not None else VectorEmbed(d, c.hidden, c.tokens)
            for m, d in enumerate(c.dims))
        self.modality = nn.Parameter(torch.randn(len(c.dims), 1, c.hidden) * 0.02)
        self.layers = nn.ModuleList(CrossAttentionLayer(c.hidden, c.heads, c.dropout) for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.hidden)
        self.heads = nn.ModuleList(_mlp(c.hidden, c.hidden, c.num_classes, c.dropout) for _ in c.dims)
        self.joint = _mlp(len(c.dims) * c.hidden, c.hidden, c.num_classes, c.dropout)
        self.weights = nn.Parameter(torch.zeros(len(c.dims) + 1))

    def forward(self, features: list[torch.Tensor], present: torch.Tensor,
                tokens: list[Tokens | None] | None = None) -> FusionOutput:
        features = self.standardise(features, present)
        seqs, valid = [], []
        for m, (x, embed) in enumerate(zip(features, self.embed)):
            t = tokens[m] if tokens is not None and m < len(tokens) else None
            if isinstance(embed, TokenEmbed):
                if t is None:
                    raise ValueError(f"hybrid fusion was trained on {self.config.modalities[m]} tokens; "
                                     "give it features of kind 'tokens'")
                seq, ok = embed(t[0]), t[1]
            else:
                seq = embed(x)
                ok = torch.ones(seq.shape[:2], dtype=torch.bool, device=seq.device)
            seqs.append(seq + self.modality[m])
            valid.append(ok & present[:, m : m + 1])
        for layer in self.layers:
            seqs = layer(seqs, valid)
        vec = torch.stack([(self.norm(s) * v.unsqueeze(-1)).sum(1) / v.sum(1, keepdim=True).clamp(min=1)
                           for s, v in zip(seqs, valid)], dim=1)  # (B, M, H): masked mean of each sequence
        heads = torch.stack([head(vec[:, i]) for i, head in enumerate(self.heads)], dim=1)
        joint = self.joint((vec * present.to(vec.dtype).unsqueeze(-1)).flatten(1)).unsqueeze(1)
        # The joint head is one more expert, present whenever any modality is.
        everything = torch.cat([heads, joint], dim=1)
        mask = torch.cat([present, present.any(dim=1, keepdim=True)], dim=1)
        return FusionOutput(combine_heads(everything, mask, self.config.head_combine, self.weights), heads)
