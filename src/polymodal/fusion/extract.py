"""What a frozen encoder gives fusion: a pooled feature per input and, where the encoder has them, tokens.

An encoder's shared embedding is made for search, not for fusion: ``lite``'s image embedding is ConSE, a
mixture of ImageNet class names, which drops most of what the picture shows (issue 16 measured a scikit-learn
MLP at 0.69 on it against 0.85 on the backbone's own pooled features). So each backend has an extractor:

- ``lite``: image = [ConSE embedding (384) | EfficientNet-Lite0's pooled backbone features (1280)], with the
  7 x 7 x 1280 feature map as 49 image tokens on a grid; text = MiniLM's sentence embedding, with its token
  states as text tokens.
- a transformers CLIP: image and text embeddings, with the vision patch tokens (on their grid) and the text
  token states.
- any other encoder: its embeddings, and no tokens (hybrid fusion then tokenises the pooled feature).

Video and audio rows keep the encoder's embedding (sampled frames' meanP, the transcript's embedding) and
have no tokens. The extractor's ``name`` goes into the feature cache's key and the checkpoint, so features of
one extractor are never mixed with another's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.errors import ImageDecodeError

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

#: text tokens kept per row (the rest cut): fusion labels rarely hang on the 65th word, memory does
MAX_TEXT_TOKENS = 64
#: pixels of the side lite's images are resized to for tokens: 224 gives the 7 x 7 map the network was trained at
LITE_SIDE = 224


@dataclass(frozen=True)
class Extracted:
    """One input's features: ``pooled`` (D,) float32 and, where the extractor has them, ``tokens`` (T, Dt)."""

    pooled: np.ndarray
    tokens: np.ndarray | None = None


@dataclass(frozen=True)
class TokenLayout:
    """How a modality's tokens are arranged: on a (rows, cols) grid (image cells) or in a sequence (text)."""

    dim: int
    grid: tuple[int, int] | None = None  # image tokens; None: a sequence of at most ``length``
    length: int = 0

    @property
    def count(self) -> int:
        return self.grid[0] * self.grid[1] if self.grid else self.length


class Extractor:
    """The embeddings of any encoder, no tokens: the fallback every backend has."""

    name = "embedding"

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def pooled_dim(self, modality: str) -> int:
        return self.encoder.dim

    def token_layout(self, modality: str) -> TokenLayout | None:
        return None

    def describe(self) -> str:
        return f"the {self.encoder.info.backend} encoder's embeddings"

    def extract(self, modality: str, values: list[str], tokens: bool) -> list[Extracted]:
        """Features of image paths or texts (video and audio go through ``features.media_feature``)."""
        if modality == "text":
            return [Extracted(v) for v in self.encoder.encode_texts(values, truncate=True)]
        return [Extracted(v) for v in self.encoder.encode_images(values)]

    def decode(self, values: list[str]) -> list[Any]:
        """Decoded images, or ImageDecodeError naming the first that cannot be read."""
        out = []
        for v in values:
            try:
                out.append(self.encoder.load_image(v))
            except ImageDecodeError:
                raise
            except (OSError, ValueError) as exc:
                raise ImageDecodeError(v, str(exc)) from None
        return out


class LiteExtractor(Extractor):
    name = "lite-backbone-v1"

    def __init__(self, encoder: Encoder) -> None:
        super().__init__(encoder)
        self._torch: Any = None

    @property
    def torch_lite(self) -> Any:
        if self._torch is None:
            from polymodal.explain.cam import torch_lite

            self._torch = torch_lite(self.encoder)
        return self._torch

    def pooled_dim(self, modality: str) -> int:
        from polymodal.models.lite.efficientnet import LITE0_HEAD

        return self.encoder.dim + LITE0_HEAD if modality == "image" else self.encoder.dim

    def token_layout(self, modality: str) -> TokenLayout | None:
        from polymodal.models.lite.efficientnet import LITE0_HEAD
        from polymodal.models.lite.spatial import STRIDE

        if modality == "image":
            side = LITE_SIDE // STRIDE
            return TokenLayout(LITE0_HEAD, grid=(side, side))
        if modality == "text":
            return TokenLayout(self.encoder.dim, length=MAX_TEXT_TOKENS)
        return None

    def describe(self) -> str:
        return ("lite: image = ConSE embedding + EfficientNet-Lite0 pooled 1280-d features, tokens = its 7x7 "
                "feature map; text = MiniLM sentence embedding, tokens = MiniLM token states")

    def extract(self, modality: str, values: list[str], tokens: bool) -> list[Extracted]:
        if modality == "text":
            pooled = self.encoder.encode_texts(values, truncate=True)
            if not tokens:
                return [Extracted(p) for p in pooled]
            return [Extracted(p, t) for p, t in zip(pooled, self._text_tokens(values))]
        from polymodal.models.lite.spatial import lite_feature_map, lite_pixels

        images = self.decode(values)
        conse = self.encoder.encode_images(images)
        # The whole picture, not the centre crop the embedding sees: a shape near the edge is still a token.
        pixels = np.stack([lite_pixels(im, LITE_SIDE, LITE_SIDE) for im in images])
        fmap = lite_feature_map(self.torch_lite, pixels)  # (N, 1280, 7, 7)
        out = []
        for c, m in zip(conse, fmap):
            pooled = np.concatenate([c, m.mean(axis=(1, 2))]).astype(np.float32)
            toks = m.reshape(m.shape[0], -1).T.astype(np.float16) if tokens else None  # (49, 1280), row-major
            out.append(Extracted(pooled, toks))
        return out

    def _text_tokens(self, texts: list[str]) -> list[np.ndarray]:
        import torch

        minilm = self.torch_lite.text
        inputs = minilm.inputs(texts, truncate=True)
        with torch.inference_mode():
            states = minilm.model(**{k: torch.as_tensor(v).to(minilm.device) for k, v in inputs.items()})
        hidden = states.last_hidden_state.float().cpu().numpy()
        lengths = inputs["attention_mask"].sum(1)
        return [h[: min(int(n), MAX_TEXT_TOKENS)].astype(np.float16) for h, n in zip(hidden, lengths)]


class ClipExtractor(Extractor):
    """A transformers CLIP run in torch: vision patch tokens (class token dropped) and text token states."""

    name = "clip-tokens-v1"

    def __init__(self, encoder: Encoder, torch_encoder: Any) -> None:
        super().__init__(encoder)
        self.torch_encoder = torch_encoder
        vision = torch_encoder.model.config.vision_config
        self.side = int(vision.image_size) // int(vision.patch_size)
        self.vision_dim = int(vision.hidden_size)
        self.text_dim = int(torch_encoder.model.config.text_config.hidden_size)

    def token_layout(self, modality: str) -> TokenLayout | None:
        if modality == "image":
            return TokenLayout(self.vision_dim, grid=(self.side, self.side))
        if modality == "text":
            return TokenLayout(self.text_dim, length=MAX_TEXT_TOKENS)
        return None

    def describe(self) -> str:
        return "CLIP: image and text embeddings, tokens = vision patch tokens and text token states"

    def extract(self, modality: str, values: list[str], tokens: bool) -> list[Extracted]:
        import torch

        model, enc = self.torch_encoder.model, self.torch_encoder
        if modality == "text":
            pooled = self.encoder.encode_texts(values, truncate=True)
            if not tokens:
                return [Extracted(p) for p in pooled]
            inputs = enc.text_inputs(values, True)
            names = {k: torch.as_tensor(v).to(enc.device) for k, v in inputs.items()
                     if k in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                hidden = model.text_model(**names).last_hidden_state.float().cpu().numpy()
            mask = inputs.get("attention_mask")
            lengths = mask.sum(1) if mask is not None else [hidden.shape[1]] * len(values)
            return [Extracted(p, h[: min(int(n), MAX_TEXT_TOKENS)].astype(np.float16))
                    for p, h, n in zip(pooled, hidden, lengths)]
        if not tokens:
            return [Extracted(p) for p in self.encoder.encode_images(values)]
        images = self.decode(values)
        pixels = np.stack([np.asarray(enc.preprocess_image(im), dtype=np.float32) for im in images])
        with torch.inference_mode():
            out = model.vision_model(pixel_values=torch.from_numpy(pixels).to(enc.device))
            # One pass gives both: CLIP's image embedding is the projected, normalised pooled class token.
            emb = torch.nn.functional.normalize(model.visual_projection(out.pooler_output), dim=-1)
        patches = out.last_hidden_state[:, 1:].float().cpu().numpy()  # the class token is the pooled summary
        return [Extracted(p, t.astype(np.float16)) for p, t in zip(emb.float().cpu().numpy(), patches)]


#: backend test -> extractor factory; first match wins (a plugin may insert its own in front)
EXTRACTORS: list[tuple[Callable[[Any], bool], Callable[[Any], Extractor]]] = []


def _is_lite(encoder: Any) -> bool:
    return encoder.info.backend == "lite" or getattr(encoder, "source_spec", None) == "lite"


def _torch_clip(encoder: Any) -> Any:
    """The torch transformers CLIP behind ``encoder`` (itself, or loaded for a bundle exported from one)."""
    model = getattr(encoder, "model", None)
    if model is not None and hasattr(model, "vision_model") and hasattr(model, "text_model"):
        return encoder
    return None


def _clip_extractor(encoder: Any) -> Extractor:
    return ClipExtractor(encoder, _torch_clip(encoder))


EXTRACTORS.append((_is_lite, LiteExtractor))
EXTRACTORS.append((lambda e: _torch_clip(e) is not None, _clip_extractor))


def extractor_for(encoder: Encoder) -> Extractor:
    for test, make in EXTRACTORS:
        if test(encoder):
            return make(encoder)
    return Extractor(encoder)
