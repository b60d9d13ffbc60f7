"""Class-activation maps of ``lite``, steered by a text (Zhou et al., CVPR 2016, "Learning Deep Features for
Discriminative Localization").

EfficientNet-Lite0 classifies the mean of its last feature map, so each ImageNet class's classifier row
applied to the map's cells, before the mean, says where in the picture that class is seen: the class's CAM.
``lite`` already knows how near each class is to a text (ConSE's class-prompt embeddings, in MiniLM's space),
so a text's map is the CAM of a softmax mix of the classes whose prompts are nearest to it. Since the mix
is linear it costs one weighted sum of classifier rows and one matrix product, whatever the number of classes.

The picture is run whole (no centre crop), resized so its long side is ``LONG_SIDE`` pixels: the map then has
one cell per 32 pixels, and an object a quarter of the picture wide is seen near the scale the network was
trained at. The settings were chosen with the pointing game (docs/explain.md): a long side of 768 and a mix
of the 10 nearest classes at temperature 0.1 beat the plain top-1 class, cell-wise softmax probabilities and
mixing two scales.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from polymodal.models.lite.spatial import STRIDE, classifier_weights, lite_feature_map, lite_pixels

#: long side, in pixels, the picture is resized to before the network sees it
LONG_SIDE = 768
#: classes mixed into a text's map: those whose prompt embeddings are nearest to the text
TOP_CLASSES = 10
#: softmax temperature over the text's cosine similarities to those class prompts
TEMPERATURE = 0.1


def text_class_weights(class_embeddings: np.ndarray, text_embedding: np.ndarray, top: int = TOP_CLASSES,
                       temperature: float = TEMPERATURE) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the ``top`` classes nearest the text and their softmax weights (summing to 1)."""
    sims = np.asarray(class_embeddings, np.float32) @ np.asarray(text_embedding, np.float32)
    idx = np.argsort(-sims)[:top]
    z = np.exp((sims[idx] - sims[idx].max()) / temperature)
    return idx, (z / z.sum()).astype(np.float32)


def network_size(width: int, height: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """The input size for a picture: aspect kept, long side ``long_side``, both sides whole multiples of the
    network's stride, so every cell of the map covers the same share of the picture."""
    scale = long_side / max(width, height)
    return (max(STRIDE, round(width * scale / STRIDE) * STRIDE), max(STRIDE, round(height * scale / STRIDE) * STRIDE))


def cam_grid(encoder: Any, image: Any, text_embedding: np.ndarray, long_side: int = LONG_SIDE) -> np.ndarray:
    """The (rows, cols) class-activation grid of one decoded RGB PIL image for one text embedding.

    ``encoder``: a torch ``lite`` encoder (``.classifier`` and ``.class_embeddings``), see ``torch_lite``.
    """
    idx, weights = text_class_weights(encoder.class_embeddings, text_embedding)
    rows, _ = classifier_weights(encoder)
    steer = weights @ rows[idx]  # (1280,): the mixed classes' classifier row
    fmap = lite_feature_map(encoder, lite_pixels(image, *network_size(image.width, image.height, long_side)))[0]
    return np.einsum("c,chw->hw", steer, fmap).astype(np.float32)


def can_cam(model: Any) -> bool:
    """Whether ``model`` (a spec, an encoder or None) can be explained by class-activation maps."""
    if model is None or model == "lite":
        return True
    if isinstance(model, str):
        return False
    if hasattr(model, "classifier") and hasattr(model, "class_embeddings"):
        return True
    # lite exported to a bundle (the default ONNX runtime): the same weights, but no torch network to open up
    return getattr(model, "source_spec", None) == "lite"


def torch_lite(model: Any, device: str | None = None) -> Any:
    """A ``lite`` encoder whose networks are torch modules, for ``model`` (None, "lite", or an encoder).

    On the default ONNX runtime ``load_model("lite")`` gives a torch-free bundle with no feature map to read,
    so for a spec or a bundle the torch encoder is loaded here (once per device in a process: it takes seconds).
    """
    if model is not None and not isinstance(model, str) and hasattr(model, "classifier"):
        return model
    return _load_torch_lite(device or getattr(model, "device", None))


@functools.lru_cache(maxsize=2)
def _load_torch_lite(device: str | None) -> Any:
    from polymodal.models import load_model

    return load_model("lite", device=device, runtime="torch")
