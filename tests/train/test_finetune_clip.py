"""Contrastive fine-tuning of a tiny random CLIP on synthetic caption–image pairs (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polymodal.errors import CheckpointError, InputError, TrainingInterrupted
from polymodal.models import load_model, parse_spec
from polymodal.train.finetune import FinetuneConfig, finetune

# Each run trains for real (about 10-40 s alone on a CPU); on a machine shared with other jobs it can take
# several times that, so these get more than the suite's default 120 s.
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # real training: the full suite only


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


@pytest.fixture(scope="module")
def tuned(tiny_clip, shape_pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned") / "tiny-clip-tuned"
    result = finetune(shape_pairs, FinetuneConfig(str(tiny_clip), out, mode="full", epochs=30, batch_size=40,
                                                  lr=1e-3, warmup=0.05))
    return result


def test_finetuning_raises_text_to_image_recall_from_chance_to_above_0_9(tuned, tiny_clip):
    result, out = tuned, tuned.output
    # 20 held-out pairs, one per (colour, shape): chance Recall@1 is 0.05.
    assert result.val_pairs == 20 and result.train_pairs == 120
    assert result.before["t2i_R@1"] <= 0.2, result.before
    assert result.after["t2i_R@1"] >= 0.9, result.after
    assert result.after["i2t_R@1"] >= 0.8, result.after
    assert set(result.after) == {f"{d}_R@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)}
    assert result.losses[-1] < result.losses[0]
    # The output is a model spec: a directory load_model recognises, that embeds like the saved weights.
    assert parse_spec(str(out)).scheme == "hf"
    encoder = load_model(str(out))
    assert encoder.dim == 16
    assert encoder.logit_scale <= 100.0
    info = json.loads((out / "polymodal_finetune.json").read_text())
    assert info["base_model"] == str(tiny_clip) and info["after"] == result.after
    assert not (out / "resume-state").exists()
    assert result.to_json() == {"before": result.before, "after": result.after, "output": str(out)}


def test_a_finetuned_model_indexes_and_searches_a_library(tuned, shape_pairs, tmp_path, capsys):
    """Issue 7's "done when": fine-tune on your pairs, then index and search with the result."""
    import shutil

    from polymodal.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted(shape_pairs.parent.glob("*-0.png")):  # the held-out images
        shutil.copy(p, photos / p.name)
    library = tmp_path / "library"
    assert main(["index", str(photos), "--library", str(library), "--model", str(tuned.output)]) == 0
    capsys.readouterr()
    found = 0
    for query in ("a blue cross", "a red dot", "a yellow stripe", "a green square"):
        assert main(["search", query, "--library", str(library), "--json", "-k", "1", "--all"]) == 0
        hits = json.loads(capsys.readouterr()[0])
        found += Path(hits[0]["path"]).name == query[2:].replace(" ", "-") + "-0.png"
    assert found >= 3


def test_resume_after_ctrl_c_equals_an_uninterrupted_seeded_run(tiny_clip, shape_pairs, tmp_path):
    def config(out: Path) -> FinetuneConfig:
        # accumulation on: 2 micro-batches of 12 per step, 5 steps an epoch, 15 in all
        return FinetuneConfig(str(tiny_clip), out, mode="full", epochs=3, batch_size=12, accum_steps=2, lr=1e-3,
                              seed=7)

    whole = finetune(shape_pairs, config(tmp_path / "whole"))

    def ctrl_c_at_step_7(step: int, total: int, loss: float) -> None:
        if step == 7:
            raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted) as info:
        finetune(shape_pairs, config(cut), on_step=ctrl_c_at_step_7)
    assert info.value.step == 7 and (cut / "resume-state").is_dir()
    with pytest.raises(InputError, match="--resume"):
        finetune(shape_pairs, config(cut))  # not silently started over
    resumed = finetune(shape_pairs, config(cut), resume=True)

    assert resumed.steps == whole.steps == 15
    assert resumed.losses == whole.losses
    assert resumed.after == whole.after
    a, b = _weights(tmp_path / "whole"), _weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_refuses_another_model(tiny_clip, shape_pairs, tmp_path):
    from tiny_models import make_tiny_clip

    cut = tmp_path / "cut"

    def stop(step: int, total: int, loss: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        finetune(shape_pairs, FinetuneConfig(str(tiny_clip), cut, epochs=1), on_step=stop)
    other = make_tiny_clip(tmp_path / "other", seed=3)
    with pytest.raises(CheckpointError, match="another model"):
        finetune(shape_pairs, FinetuneConfig(str(other), cut, epochs=1), resume=True)


@pytest.mark.parametrize(("mode", "frozen", "trained"), [
    ("projections", ("vision_model.", "text_model."), ("visual_projection.", "text_projection.")),
    ("lit", ("vision_model.", "visual_projection."), ("text_model.", "text_projection.")),
    ("full", (), ("vision_model.", "text_model.", "visual_projection.", "text_projection.")),
])
def test_modes_train_exactly_their_parameters(mode, frozen, trained, tiny_clip, shape_pairs, tmp_path):
    finetune(shape_pairs, FinetuneConfig(str(tiny_clip), tmp_path / mode, mode=mode, epochs=1, lr=1e-3))
    base, tuned = _weights(tiny_clip), _weights(tmp_path / mode)
    for prefix in frozen:
        for k in (k for k in base if k.startswith(prefix)):
            assert torch.equal(base[k], tuned[k]), f"{mode}: {k} changed"
    for prefix in trained:
        changed = [k for k in base if k.startswith(prefix) and not torch.equal(base[k], tuned[k])]
        assert changed, f"{mode}: nothing under {prefix} trained"


def test_wise_ft_interpolates_between_pretrained_and_finetuned_weights(tiny_clip, shape_pairs, tmp_path):
    def run(alpha: float) -> dict[str, torch.Tensor]:
        out = tmp_path / f"a{alpha}"
        finetune(shape_pairs, FinetuneConfig(str(tiny_clip), out, mode="full", epochs=1, lr=1e-3, wise_alpha=alpha))
        return _weights(out)

    base, full, half, none = _weights(tiny_clip), run(1.0), run(0.5), run(0.0)
    moved = 0
    for k, v in base.items():
        if not v.is_floating_point():
            continue
        torch.testing.assert_close(none[k], v)
        torch.testing.assert_close(half[k], 0.5 * v + 0.5 * full[k])
        moved += int(not torch.equal(full[k], v))
    assert moved > 10


def test_siglip_is_refused_with_a_reason(tmp_path, shape_pairs):
    from tiny_models import make_tiny_siglip

    siglip = make_tiny_siglip(tmp_path / "siglip")
    with pytest.raises(InputError, match="SigLIP"):
        finetune(shape_pairs, FinetuneConfig(str(siglip), tmp_path / "out", epochs=1))
