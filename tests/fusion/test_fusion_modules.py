"""The fusion modules behind one interface: shapes, explicit masking of missing modalities, the registry."""

from __future__ import annotations

import pytest
import torch

from polymodal.errors import InputError
from polymodal.fusion import FusionConfig, build_fusion, fusions
from polymodal.fusion.modules import combine_heads

VARIANTS = [
    ("early", {"combine": "concat"}),
    ("early", {"combine": "product"}),
    ("early", {"combine": "gated"}),
    ("early", {"joint": "transformer"}),
    ("late", {"head_combine": "mean"}),
    ("late", {"head_combine": "weighted"}),
    ("late", {"head_combine": "poe"}),
    ("hybrid", {"head_combine": "mean"}),
    ("hybrid", {"head_combine": "poe"}),
]


def _model(kind: str, **options):
    torch.manual_seed(0)
    config = FusionConfig(kind, ("image", "text"), (12, 20), 3, hidden=16, dropout=0.0, **options)
    return build_fusion(config).eval()


@pytest.mark.parametrize(("kind", "options"), VARIANTS)
def test_every_variant_gives_class_logits(kind, options):
    model = _model(kind, **options)
    out = model([torch.randn(5, 12), torch.randn(5, 20)], torch.ones(5, 2, dtype=torch.bool))
    assert out.logits.shape == (5, 3)
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize(("kind", "options"), VARIANTS)
def test_a_missing_modality_is_masked_not_read(kind, options):
    """Whatever sits in a masked modality's slot cannot change the output: masking is explicit."""
    model = _model(kind, **options)
    image = torch.randn(4, 12)
    present = torch.tensor([[True, False]] * 4)
    with torch.no_grad():
        a = model([image, torch.zeros(4, 20)], present).logits
        b = model([image, 100 * torch.randn(4, 20)], present).logits
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("kind", "options"), VARIANTS)
def test_rows_with_nothing_present_do_not_crash_or_poison_the_batch(kind, options):
    model = _model(kind, **options)
    present = torch.tensor([[True, True], [False, False], [False, True]])
    with torch.no_grad():
        out = model([torch.randn(3, 12), torch.randn(3, 20)], present).logits
        first = model([torch.randn(3, 12), torch.randn(3, 20)], present).logits
    assert torch.isfinite(out).all()
    # The empty row's output does not depend on its (masked) inputs either.
    torch.testing.assert_close(out[1], first[1])


def test_product_of_experts_multiplies_the_present_distributions():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])
    both = combine_heads(logits, torch.tensor([[True, True]]), "poe", None)
    expected = torch.log_softmax(logits[0, 0], -1) + torch.log_softmax(logits[0, 1], -1)
    torch.testing.assert_close(both[0], expected)
    only_first = combine_heads(logits, torch.tensor([[True, False]]), "poe", None)
    torch.testing.assert_close(only_first[0], torch.log_softmax(logits[0, 0], -1))


def test_mean_averages_only_present_heads():
    logits = torch.tensor([[[2.0, 0.0], [10.0, 10.0]]])
    out = combine_heads(logits, torch.tensor([[True, False]]), "mean", None)
    torch.testing.assert_close(out[0], torch.tensor([2.0, 0.0]))


def test_registry_lists_the_three_kinds_and_names_what_works():
    assert {"early", "late", "hybrid"} <= set(fusions())
    with pytest.raises(InputError, match="early, hybrid, late"):
        build_fusion(FusionConfig("middle", ("image",), (4,), 2))
    with pytest.raises(InputError, match="combine 'sum' is not one of concat, product, gated"):
        build_fusion(FusionConfig("early", ("image",), (4,), 2, combine="sum"))
    with pytest.raises(InputError, match="at least 2 classes"):
        build_fusion(FusionConfig("late", ("image",), (4,), 1))


def test_config_round_trips_through_json():
    import json

    config = FusionConfig("hybrid", ("image", "text"), (12, 20), 3, hidden=16, head_combine="poe")
    assert FusionConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
