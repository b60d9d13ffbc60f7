"""The pieces of fine-tuning: the loss and its temperature clamp, Recall@K, reading pairs, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from shapes import draw, write_jsonl

from polymodal.cli import main
from polymodal.errors import InputError
from polymodal.train.objective import clamp_logit_scale, clip_loss
from polymodal.train.pairs import read_pairs
from polymodal.train.retrieval import recall_at_k


def test_clip_loss_is_symmetric_infonce():
    torch.manual_seed(0)
    img, txt = torch.randn(6, 8), torch.randn(6, 8)
    scale = torch.tensor(math.log(10.0))
    logits = 10.0 * torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
    target = torch.arange(6)
    want = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(clip_loss(img, txt, scale), want)
    torch.testing.assert_close(clip_loss(img, txt, scale), clip_loss(txt, img, scale))


def test_logit_scale_is_clamped_at_100_as_in_clip():
    p = torch.nn.Parameter(torch.tensor(7.0))
    clamp_logit_scale(p)
    assert math.isclose(float(p.detach().exp()), 100.0, rel_tol=1e-5)
    q = torch.nn.Parameter(torch.tensor(-1.0))
    clamp_logit_scale(q)
    assert float(q.detach()) == 0.0


def test_recall_at_k_both_ways_and_ties_count_against():
    eye = np.eye(4, dtype=np.float32)
    assert recall_at_k(eye, eye) == {f"{d}_R@{k}": 1.0 for d in ("t2i", "i2t") for k in (1, 5, 10)}
    text = eye[[1, 0, 2, 3]]  # texts 0 and 1 swapped
    r = recall_at_k(eye, text, ks=(1, 2))
    assert r["t2i_R@1"] == 0.5 and r["t2i_R@2"] == 0.5 and r["i2t_R@1"] == 0.5
    same = np.ones((4, 4), np.float32)  # a collapsed model that ranks everything equal
    assert recall_at_k(same, same, ks=(1,))["t2i_R@1"] == 0.0


def test_pairs_from_a_folder_with_caption_sidecars(tmp_path):
    rng = np.random.default_rng(0)
    for i, colour in enumerate(("red", "blue", "green")):
        draw(colour, "square", rng).save(tmp_path / f"{i}.png")
        (tmp_path / f"{i}.txt").write_text(f"a {colour} square\n")
    pairs = read_pairs(tmp_path)
    assert [p.text for p in pairs.pairs] == ["a red square", "a blue square", "a green square"]
    draw("red", "dot", rng).save(tmp_path / "3.png")
    with pytest.raises(InputError, match=r"3\.png has no caption sidecar 3\.txt"):
        read_pairs(tmp_path)
    skipped = read_pairs(tmp_path, skip_bad=True)
    assert len(skipped.pairs) == 3 and "3.png" in skipped.skipped[0].reason


def test_bad_pairs_name_the_line(tmp_path):
    rng = np.random.default_rng(0)
    draw("red", "square", rng).save(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    for rows, message in [
        ([{"image": "a.png", "text": "x"}, {"image": "gone.png", "text": "y"}], "line 2 of .*gone.png does not exist"),
        ([{"image": "a.png", "text": "x"}, {"image": "broken.png", "text": "y"}], "line 2 of .*broken.png"),
        ([{"image": "a.png"}], "line 1 of .* has no text"),
        ([{"image": "a.png", "text": "x", "label": "z"}], "line 1 of .* unknown field"),
    ]:
        data = write_jsonl(tmp_path / "pairs.jsonl", rows)
        with pytest.raises(InputError, match=message):
            read_pairs(data)


@pytest.mark.slow
def test_cli_finetune_json_and_errors(tiny_clip, shape_pairs, tmp_path, capsys):
    out = tmp_path / "tuned"
    code = main(["finetune", "--data", str(shape_pairs), "--model", str(tiny_clip), "--out", str(out),
                 "--epochs", "1", "--json"])
    stdout, _ = capsys.readouterr()
    assert code == 0
    result = json.loads(stdout)
    assert set(result) == {"before", "after", "output"} and result["output"] == str(out)
    assert set(result["before"]) == {f"{d}_R@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)}
    # ... and the output works as --model for every other command
    assert main(["embed", "--text", "a red dot", "--model", str(out), "--json"]) == 0
    assert len(json.loads(capsys.readouterr()[0])[0]["embedding"]) == 16

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"image": "nowhere.png", "text": "a"}])
    assert main(["finetune", "--data", str(bad), "--model", str(tiny_clip), "--out", str(tmp_path / "x")]) == 4
    assert "line 1 of" in capsys.readouterr()[1]
    assert main(["finetune", "--data", str(shape_pairs), "--model", str(tiny_clip), "--out", str(tmp_path / "y"),
                 "--resume"]) == 4
    assert "nothing to resume" in capsys.readouterr()[1]
    assert main(["finetune", "--data", str(shape_pairs), "--model", str(tiny_clip), "--out", str(tmp_path / "z"),
                 "--wise-alpha", "1.5"]) == 4


@pytest.mark.slow
def test_open_clip_fine_tune_saves_open_clips_own_format(tmp_path, shape_pairs):
    from polymodal.models import load_model, parse_spec
    from polymodal.train.finetune import FinetuneConfig, finetune
    from tiny_models import make_tiny_open_clip

    base = make_tiny_open_clip(tmp_path / "oc")
    out = tmp_path / "oc-tuned"
    result = finetune(shape_pairs, FinetuneConfig(str(base), out, mode="full", epochs=1, lr=1e-3))
    assert parse_spec(str(out)).scheme == "open_clip"
    assert load_model(str(out)).dim == 16
    assert set(result.after) == set(result.before)
