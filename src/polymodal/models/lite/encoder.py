"""``lite``: an offline CLIP-like encoder from two installed models, joined by ConSE.

ConSE (Norouzi et al., ICLR 2014, "Zero-Shot Learning by Convex Combination of Semantic Embeddings") maps
an image into a text embedding space without training: classify it with an ImageNet classifier, then take
the probability-weighted mean of the text embeddings of its top-T classes. Here the classifier is
EfficientNet-Lite0 and the text space is all-MiniLM-L6-v2, so text queries are plain MiniLM sentence
embeddings and images land near the sentences that describe their classes.

The settings below were chosen on the bundled scikit-image / scikit-learn photos (see docs/lite.md for the
measurements): T=10 and temperature 1 keep enough runner-up classes for "a cat" to reach a photo whose top
class is "tiger cat", while the prompt "a photo of a {lemma}" matches the way people phrase queries.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.models.base import Encoder, Network
from polymodal.models.preprocess import ImageTransform

TOP_T = 10
TEMPERATURE = 1.0
PROMPT = "a photo of a {}."
#: softmax scale for match/classify. Cosines of ConSE image embeddings to label prompts differ by ~0.2-0.3
#: between the right label and the next (about 3x the gaps of CLIP, which uses 100), so a third of it.
LOGIT_SCALE = 25.0
#: bump when anything that changes image embeddings changes, so stored libraries know they are stale
VERSION = "1"
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class LiteEncoder(Encoder):
    backend = "lite"
    #: EfficientNet's activations are large: batches of 16 run as fast as 32 here and hold ~120 MB less
    default_batch_size = 16

    def __init__(
        self,
        name: str = "lite",
        device: str | None = None,
        batch_size: int | None = None,
        top_t: int = TOP_T,
        temperature: float = TEMPERATURE,
        prompt: str = PROMPT,
        fast_preprocess: bool = True,  # False: decode JPEGs at full size (the transform is the reference)
    ) -> None:
        super().__init__(name, device, batch_size)
        self.fast_preprocess = fast_preprocess
        from polymodal.models.lite.efficientnet import LITE0_RESOLUTION, load_lite0
        from polymodal.models.lite.minilm import MiniLM

        self.top_t = top_t
        self.temperature = temperature
        self.prompt = prompt
        self.classifier = load_lite0().to(self.device)
        self.text = MiniLM(self.device)
        self.transform = ImageTransform(
            resize=LITE0_RESOLUTION + 32, crop=LITE0_RESOLUTION, mean=(127.0,) * 3, std=(128.0,) * 3, scale=255.0
        )
        self.class_embeddings = self._class_embeddings()

    @property
    def dim(self) -> int:
        return self.text.dim

    @property
    def logit_scale(self) -> float:
        return LOGIT_SCALE

    @property
    def context_length(self) -> int:
        return self.text.context_length

    def _class_embeddings(self) -> np.ndarray:
        """Text embeddings of the 1000 class prompts, cached on disk: computing them takes seconds."""
        from polymodal.models.lite.imagenet import imagenet_classes
        from polymodal.paths import cache_dir

        prompts = [self.prompt.format(c.name) for c in imagenet_classes()]
        key = hashlib.sha256(("\n".join(prompts) + "|minilm-l6-v2|" + VERSION).encode()).hexdigest()[:16]
        path = cache_dir() / "lite" / f"classes-{key}.npy"
        if path.exists():
            try:
                cached = np.load(path, allow_pickle=False)
                if cached.shape == (len(prompts), self.dim):
                    return cached.astype(np.float32)
            except (OSError, ValueError):
                pass  # a damaged cache file is rebuilt below
        emb = np.concatenate([self.text.encode(prompts[i : i + 128]) for i in range(0, len(prompts), 128)])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, emb)
            tmp.replace(path)  # atomic: a concurrent reader never sees half a file
        except OSError:
            pass  # a read-only cache only costs time
        return emb

    @property
    def input_size(self) -> int | None:
        return self.transform.crop if self.fast_preprocess else None

    def preprocess_image(self, image: Any) -> Any:
        return self.transform(image)

    def build_networks(self) -> dict[str, Network]:
        return {
            "image": Network(self.classifier, {"pixel_values": {0: "batch"}}),
            "text": Network(self.text.network(), {n: {0: "batch", 1: "tokens"} for n in TEXT_INPUTS}),
        }

    def text_inputs(self, texts: list[str], truncate: bool) -> dict[str, np.ndarray]:
        return self.text.inputs(texts, truncate)

    def class_probabilities(self, batch: list[Any]) -> np.ndarray:
        pixels = np.stack([np.asarray(x, dtype=np.float32) for x in batch])
        return self._softmax(self.run("image", {"pixel_values": pixels}))

    def _softmax(self, logits: np.ndarray) -> np.ndarray:
        z = logits / self.temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def postprocess_image(self, output: np.ndarray) -> np.ndarray:
        """ConSE: the probability-weighted mean of the top-T class embeddings."""
        from polymodal.models.bundle import conse

        return conse(output, self.class_embeddings, self.top_t, self.temperature)

    def export_postprocess(self, folder: Path) -> dict[str, Any]:
        from polymodal.models.bundle import file_entry

        np.save(folder / "classes.npy", self.class_embeddings.astype(np.float32))
        return {"kind": "conse", "top_t": self.top_t, "temperature": self.temperature, "prompt": self.prompt,
                "version": VERSION, "classes": file_entry(folder / "classes.npy")}

