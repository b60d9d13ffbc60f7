"""Ctrl-C during fusion training leaves a state that resumes to exactly the uninterrupted result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import matching

from polymodal.errors import TrainingInterrupted
from polymodal.fusion import FusionConfig, TrainConfig, fit

CONFIG = FusionConfig("hybrid", ("image", "text"), (32, 32), 2, hidden=32)
TRAIN = TrainConfig(epochs=8, patience=100, seed=3, modality_dropout=0.2)


def test_resume_after_interrupt_equals_an_uninterrupted_run(tmp_path):
    train, val = matching(300, 1), matching(100, 2)
    classes = ["different", "same"]
    whole = fit(CONFIG, train, val, TRAIN, classes=classes)

    def stop_at_3(epoch, total, record):
        if epoch == 3:
            raise KeyboardInterrupt

    state = tmp_path / "state"
    with pytest.raises(TrainingInterrupted) as info:
        fit(CONFIG, train, val, TRAIN, classes=classes, on_epoch=stop_at_3, state_dir=state)
    assert info.value.checkpoint == str(state) and state.is_dir()

    resumed = fit(CONFIG, train, val, TRAIN, classes=classes, state_dir=state, resume=True)
    assert [h.val_loss for h in resumed.history] == [h.val_loss for h in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert not state.exists()  # finished: the state is gone, the model is the product


def test_resume_refuses_a_state_made_with_other_settings(tmp_path):
    from polymodal.errors import CheckpointError

    train, val = matching(100, 1), matching(50, 2)
    state = tmp_path / "state"

    def stop(epoch, total, record):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit(CONFIG, train, val, TRAIN, classes=["d", "s"], on_epoch=stop, state_dir=state)
    other = TrainConfig(epochs=8, patience=100, seed=4)
    with pytest.raises(CheckpointError, match="other settings"):
        fit(CONFIG, train, val, other, classes=["d", "s"], state_dir=state, resume=True)


def test_train_resume_through_the_pipeline(tmp_path, tiny_clip):
    import json

    from shapes import COLOURS, draw, write_jsonl

    from polymodal.errors import CheckpointError
    from polymodal.fusion import TrainOptions, train_fusion
    from polymodal.models import load_model

    rng = np.random.default_rng(0)
    rows = []
    for colour in list(COLOURS)[:3]:
        for k in range(8):
            draw(colour, "square", rng).save(tmp_path / f"{colour}{k}.png")
            rows.append({"image": f"{colour}{k}.png", "label": colour})
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    encoder = load_model(str(tiny_clip))
    options = TrainOptions(fusions=("late",), out=tmp_path / "m", train=TrainConfig(epochs=6, patience=100))
    whole = train_fusion(data, options, encoder=encoder)

    def stop(kind, epoch, total, record):
        if epoch == 2:
            raise KeyboardInterrupt

    cut = TrainOptions(fusions=("late",), out=tmp_path / "cut", train=TrainConfig(epochs=6, patience=100))
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_fusion(data, TrainOptions(out=tmp_path / "none", resume=True), encoder=encoder)
    with pytest.raises(TrainingInterrupted):
        train_fusion(data, cut, encoder=encoder, on_epoch=stop)
    resumed = train_fusion(data, TrainOptions(fusions=("late",), out=tmp_path / "cut", resume=True,
                                              train=TrainConfig(epochs=6, patience=100)), encoder=encoder)
    assert resumed.summary() == whole.summary()
    a = json.loads((tmp_path / "m" / "fusion.json").read_text())["history"]
    b = json.loads((tmp_path / "cut" / "fusion.json").read_text())["history"]
    assert a == b
