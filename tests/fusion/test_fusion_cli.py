"""``polymodal train`` / ``predict`` end to end: real image files, a tiny CLIP loaded from disk, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shapes import COLOURS, SHAPES, draw, write_jsonl

from polymodal.cli import main


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Label = colour of the shape in the image; the text names the shape only."""
    root = tmp_path_factory.mktemp("colour-data")
    rng = np.random.default_rng(0)
    rows = []
    for colour in COLOURS:
        for k in range(14):
            shape = SHAPES[k % len(SHAPES)]
            name = f"{colour}-{k}.png"
            draw(colour, shape, rng).save(root / name)
            rows.append({"image": name, "text": f"a {shape}", "label": colour})
    return write_jsonl(root / "data.jsonl", rows)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_train_json_saves_a_checkpoint_and_reuses_cached_features(colour_data, tiny_clip, tmp_path, capsys):
    out = tmp_path / "model"
    code, stdout, _ = _run(capsys, "train", "--data", str(colour_data), "--fusion", "early", "--model",
                           str(tiny_clip), "--out", str(out), "--epochs", "60", "--json")
    assert code == 0
    result = json.loads(stdout)
    assert set(result) == {"early"} and set(result["early"]) == {"accuracy", "macro_f1"}
    # Colour is plain in a random CLIP's image features; measured 1.0 here, chance is 0.2.
    assert result["early"]["accuracy"] >= 0.8
    assert (out / "model.safetensors").is_file()
    config = json.loads((out / "fusion.json").read_text())
    assert config["encoder"]["spec"].endswith(str(tiny_clip)) and config["encoder"]["dim"] == 16
    assert config["fusion"]["modalities"] == ["image", "text"]
    assert sorted(config["classes"]) == sorted(COLOURS)
    assert not (out / "resume-state").exists()

    code, stdout, _ = _run(capsys, "train", "--data", str(colour_data), "--fusion", "late", "--model",
                           str(tiny_clip), "--out", str(tmp_path / "again"), "--epochs", "2")
    assert code == 0
    assert "features: 0 encoded, 140 from the cache" in stdout  # 70 images + 70 texts
    assert "PRECISION" in stdout and "red" in stdout  # the per-class table


@pytest.mark.slow
def test_compare_prints_a_table_and_plots_validation_curves(colour_data, tiny_clip, tmp_path, capsys):
    out = tmp_path / "cmp"
    code, stdout, _ = _run(capsys, "train", "--data", str(colour_data), "--compare", "early,late,hybrid",
                           "--model", str(tiny_clip), "--out", str(out), "--epochs", "40", "--json")
    assert code == 0
    result = json.loads(stdout)
    # The fusions, then the two scikit-learn baselines fitted on the same pooled features.
    assert list(result) == ["early", "late", "hybrid", "baseline_logreg", "baseline_mlp"]
    # The label is the image's colour, plain in a random CLIP's image features: chance is 0.2, and every
    # method, baselines included, must find it (measured: all 1.0 on the 10 test rows).
    for kind, r in result.items():
        assert r["accuracy"] >= 0.8, (kind, result)
    for kind in ("early", "late", "hybrid"):
        assert (out / kind / "fusion.json").is_file()
    png = out / "validation_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

    code, stdout, _ = _run(capsys, "train", "--data", str(colour_data), "--compare", "early,late",
                           "--model", str(tiny_clip), "--out", str(tmp_path / "cmp2"), "--epochs", "3")
    assert code == 0
    assert "FUSION" in stdout and "TEST_MACRO_F1" in stdout and "validation curves:" in stdout
    assert "baseline_logreg" in stdout and "baseline_mlp" in stdout


@pytest.fixture(scope="module")
def trained(colour_data, tiny_clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "model"
    assert main(["train", "--data", str(colour_data), "--model", str(tiny_clip), "--out", str(out),
                 "--epochs", "40", "--json"]) == 0
    return out


@pytest.mark.slow
def test_predict_uses_the_checkpoints_own_model_and_masks_a_missing_modality(colour_data, trained, tmp_path, capsys):
    capsys.readouterr()
    code, stdout, _ = _run(capsys, "predict", "--checkpoint", str(trained), str(colour_data), "--json")
    assert code == 0
    report = json.loads(stdout)
    assert len(report["predictions"]) == 70
    assert report["metrics"]["accuracy"] >= 0.8
    assert set(report["predictions"][0]["probs"]) == set(COLOURS)

    rows = [json.loads(line) for line in colour_data.read_text().splitlines()][:10]
    image_only = write_jsonl(colour_data.parent / "image-only.jsonl",
                             [{"image": r["image"], "label": r["label"]} for r in rows])
    code, stdout, err = _run(capsys, "predict", "--checkpoint", str(trained), str(image_only), "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["missing_modalities"] == ["text"]
    assert all(p["missing"] == ["text"] for p in report["predictions"])
    assert "predicting from the other modalities" in err


@pytest.mark.slow
def test_predict_refuses_another_model_and_other_modalities(colour_data, trained, tiny_clip, tmp_path, capsys):
    from tiny_models import make_tiny_clip

    other = make_tiny_clip(tmp_path / "other-clip", seed=1)
    code, _, err = _run(capsys, "predict", "--checkpoint", str(trained), str(colour_data), "--model", str(other))
    assert code == 4 and "was trained on features of" in err

    code, _, err = _run(capsys, "predict", "--checkpoint", str(tmp_path), str(colour_data))
    assert code == 4 and "holds no fusion.json" in err

    # A model trained on text only cannot take images.
    rows = [json.loads(line) for line in colour_data.read_text().splitlines()]
    text_only = write_jsonl(colour_data.parent / "text-only.jsonl",
                            [{"text": f"{r['label']} thing", "label": r["label"]} for r in rows])
    out = tmp_path / "text-model"
    assert main(["train", "--data", str(text_only), "--model", str(tiny_clip), "--out", str(out), "--epochs", "2",
                 "--json"]) == 0
    capsys.readouterr()
    code, _, err = _run(capsys, "predict", "--checkpoint", str(out), str(colour_data))
    assert code == 4 and "trained on text only" in err


def _bad(tmp_path: Path, colour_data: Path, edit) -> Path:
    rows = [json.loads(line) for line in colour_data.read_text().splitlines()]
    for r in rows:
        r["image"] = str(colour_data.parent / r["image"])
    edit(rows)
    return write_jsonl(tmp_path / "bad.jsonl", rows)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda rows: rows[2].update(image="nowhere.png"), "line 3 of .*nowhere.png does not exist"),
    (lambda rows: rows[4].update(colour="red"), "line 5 of .* unknown field\\(s\\) 'colour'"),
    (lambda rows: rows[1].pop("label"), "line 2 of .* has no label"),
    (lambda rows: rows[6].update(audio="a.wav"), "line 7 of .*a.wav does not exist"),
    (lambda rows: [r.pop("label") for r in rows], "no row of .* has the label field 'label'.*--target"),
    (lambda rows: [r.update(label="red") for r in rows], "has 1 class \\('red'\\).*at least two"),
])
def test_bad_rows_are_errors_that_name_the_row(edit, message, colour_data, tiny_clip, tmp_path, capsys):
    import re

    data = _bad(tmp_path, colour_data, edit)
    code, _, err = _run(capsys, "train", "--data", str(data), "--model", str(tiny_clip), "--out",
                        str(tmp_path / "m"), "--epochs", "1")
    assert code == 4, err
    assert re.search(message, err), err


def test_skip_bad_reports_and_skips_bad_rows(colour_data, tiny_clip, tmp_path, capsys):
    def edit(rows):
        rows[2]["image"] = "nowhere.png"
        rows[6]["audio"] = "a.wav"
        (tmp_path / "broken.png").write_bytes(b"not a png")
        rows[9]["image"] = str(tmp_path / "broken.png")

    data = _bad(tmp_path, colour_data, edit)
    code, stdout, err = _run(capsys, "train", "--data", str(data), "--model", str(tiny_clip), "--out",
                             str(tmp_path / "m"), "--epochs", "1", "--skip-bad")
    assert code == 0, err
    assert "skipped: line 3" in err and "skipped: line 7" in err and "skipped: line 10" in err
    assert "67 rows" in stdout

    code, _, err = _run(capsys, "train", "--data", str(data), "--model", str(tiny_clip), "--out",
                        str(tmp_path / "m2"), "--epochs", "1")
    assert code == 4 and "line 3" in err
