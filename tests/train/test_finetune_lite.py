"""Fine-tuning the offline ``lite`` model: a learned projection from the image tower into the text space."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from polymodal.models import load_model, parse_spec
from polymodal.train.finetune import FinetuneConfig, finetune

# Each run trains for real (about 10-40 s alone on a CPU); on a machine shared with other jobs it can take
# several times that, so these get more than the suite's default 120 s.
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # real training: the full suite only


def test_lite_learns_a_projection_that_loads_as_a_model_spec(shape_pairs, tmp_path, lite):
    out = tmp_path / "lite-tuned"
    result = finetune(shape_pairs, FinetuneConfig("lite", out, epochs=8, batch_size=20, lr=1e-2))
    # ConSE puts flat synthetic shapes near a few ImageNet classes: measured t2i R@1 0.05-0.15 before.
    assert result.before["t2i_R@1"] <= 0.3, result.before
    assert result.after["t2i_R@1"] >= 0.9, result.after
    assert parse_spec(str(out)).scheme == "lite-tuned"
    cfg = json.loads((out / "polymodal_lite.json").read_text())
    assert cfg["feature_dim"] == 1280 and cfg["dim"] == 384 and cfg["logit_scale"] <= 100

    # Its image embedding is exactly the normalised projection of EfficientNet-Lite0's pooled features.
    encoder = load_model(str(out))  # the exported bundle, as a user gets it
    assert encoder.info.backend == "lite-tuned" and encoder.dim == 384
    image = sorted(shape_pairs.parent.glob("*.png"))[0]
    got = encoder.encode_images([str(image)])[0]
    w = load_file(str(out / "projection.safetensors"))
    net = load_model(str(out), runtime="torch").classifier  # EfficientNet-Lite0 in torch, to compute it by hand
    x = torch.from_numpy(np.asarray(encoder.preprocess_image(encoder.load_image(str(image))), np.float32))[None]
    with torch.no_grad():
        want = torch.nn.functional.normalize(net.features(x) @ w["weight"].T + w["bias"], dim=-1)
    np.testing.assert_allclose(got, want[0].numpy(), atol=1e-4)
    # Texts are untouched MiniLM embeddings, as with lite.
    np.testing.assert_allclose(encoder.encode_texts(["a red dot"]), lite.encode_texts(["a red dot"]), atol=1e-4)


def test_lite_wise_alpha_zero_is_the_zero_shot_model(shape_pairs, tmp_path, lite):
    out = tmp_path / "alpha0"
    finetune(shape_pairs, FinetuneConfig("lite", out, epochs=1, batch_size=20, lr=1e-2, wise_alpha=0.0))
    images = [str(p) for p in sorted(shape_pairs.parent.glob("*.png"))[:4]]
    np.testing.assert_allclose(load_model(str(out)).encode_images(images), lite.encode_images(images),
                               atol=1e-4)
