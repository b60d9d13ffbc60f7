"""`polymodal eval generation`: CLIPScore, diversity and FID/KID of generated images, against direct
computations from the encoder's own embeddings and against torchmetrics' FID and KID."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from polymodal.cli import main
from polymodal.errors import InputError
from polymodal.eval.generation import GeneratedSet, evaluate_generation, load_generated

SHAPES = {"a red circle": ("ellipse", (220, 30, 30)), "a blue square": ("rectangle", (30, 40, 220)),
          "a green triangle": ("polygon", (30, 180, 40))}


def _shape(kind: str, colour: tuple[int, int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    bg = tuple(int(x) for x in rng.integers(200, 256, 3))
    img = Image.new("RGB", (96, 96), bg)
    d = ImageDraw.Draw(img)
    x0, y0 = (int(v) for v in rng.integers(5, 30, 2))
    x1, y1 = x0 + int(rng.integers(40, 60)), y0 + int(rng.integers(40, 60))
    if kind == "polygon":
        d.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)
    else:
        getattr(d, kind)([x0, y0, x1, y1], fill=colour)
    return img


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Three images of each of three prompts, the prompt in a PNG text chunk as `polymodal generate` writes it."""
    root = tmp_path_factory.mktemp("generated")
    for p, (prompt, (kind, colour)) in enumerate(SHAPES.items()):
        for i in range(3):
            info = PngInfo()
            info.add_itxt("prompt", prompt)
            _shape(kind, colour, 10 * p + i).save(root / f"{p}-{i}.png", pnginfo=info)
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, photos) -> Path:
    root = tmp_path_factory.mktemp("reference")
    for name in ("cat", "coffee", "rocket", "motorbike", "flower", "horse"):
        Image.open(photos[name]).convert("RGB").resize((96, 96)).save(root / f"{name}.png")
    return root


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_clip_score_and_diversity_equal_direct_computations(generated, lite) -> None:
    data = load_generated(generated)
    assert len(data.images) == 9 and sorted(set(data.prompts)) == sorted(SHAPES)
    r = evaluate_generation(data, lite)
    img = _unit(lite.encode_images(data.images))
    txt = _unit(lite.encode_texts(data.prompts))
    want = 2.5 * np.maximum(np.sum(img * txt, axis=1), 0.0)
    assert want.max() > 0  # a case where the clamp is not all that is tested
    np.testing.assert_allclose(r.per_image, want, rtol=1e-5, atol=1e-6)
    assert r.clip_score["mean"] == pytest.approx(want.mean(), rel=1e-5)
    assert r.clip_score["std"] == pytest.approx(want.std(), rel=1e-4, abs=1e-7)
    spreads = []
    for prompt in SHAPES:
        idx = [i for i, p in enumerate(data.prompts) if p == prompt]
        pairs = [(a, b) for a in idx for b in idx if a < b]
        spreads.append(np.mean([1.0 - img[a] @ img[b] for a, b in pairs]))
        assert r.per_prompt[prompt] == pytest.approx(want[idx].mean(), rel=1e-5)
    assert r.diversity == pytest.approx(np.mean(spreads), rel=1e-5)
    assert r.diversity_prompts == 3 and r.fid is None and r.kid is None


class _Identity:
    """A feature 'extractor' for torchmetrics that hands back the features it is given (the encoder's)."""

    @staticmethod
    def make(dim: int):
        import torch

        class Identity(torch.nn.Module):
            num_features = dim

            def forward(self, x):
                return x

        return Identity()


@pytest.mark.slow
def test_fid_and_kid_equal_torchmetrics_on_the_same_features(generated, reference, lite) -> None:
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    data = load_generated(generated)
    ref_paths = sorted(reference.glob("*.png"))
    # equal sizes and one subset of all images: KID's random subsets then hold every image on both sides
    gen_paths = data.images[: len(ref_paths)]
    sub = GeneratedSet(gen_paths, data.prompts[: len(ref_paths)], "six")
    r = evaluate_generation(sub, lite, reference, kid_subsets=1, kid_subset_size=len(ref_paths))
    fake = torch.from_numpy(lite.encode_images(gen_paths).astype(np.float64))
    real = torch.from_numpy(lite.encode_images(ref_paths).astype(np.float64))
    fid = FrechetInceptionDistance(feature=_Identity.make(lite.dim))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    kid = KernelInceptionDistance(feature=_Identity.make(lite.dim), subsets=1, subset_size=len(ref_paths))
    kid.update(real, real=True)
    kid.update(fake, real=False)
    kid_mean, _ = kid.compute()
    assert r.fid == pytest.approx(float(fid.compute()), rel=1e-5, abs=1e-6)
    assert r.kid is not None and r.kid["mean"] == pytest.approx(float(kid_mean), rel=1e-5, abs=1e-8)
    assert r.fid > 0.05  # shapes and photos are far apart: not a vacuous 0 = 0
    assert r.reference_images == 6 and r.feature_dim == lite.dim


@pytest.mark.slow
def test_cli_json_report_and_one_fid_implementation(generated, reference, tmp_path, capsys, tiny_clip) -> None:
    report = tmp_path / "report"
    argv = ["eval", "generation", "--data", str(generated), "--reference", str(reference), "--model", "lite",
            "--model", str(tiny_clip), "--runtime", "torch", "--json", "--report", str(report)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list) and [o["model"] for o in out] == ["lite", out[1]["model"]]
    assert out[1]["model"] != "lite" and out[0]["feature_dim"] != out[1]["feature_dim"]
    for o in out:
        assert o["extractor"] == o["model"] and o["images"] == 9 and o["prompts"] == 3
        assert set(o["clip_score"]) == {"mean", "std", "min", "max"} and set(o["kid"]) == {"mean", "std"}
    page = (report / "report.md").read_text()
    assert "| lite |" in page and "FID" in page and "clip_score_hist.png" in page
    for png in ("clip_score_hist.png", "clip_score_per_prompt.png"):
        with Image.open(report / png) as im:
            assert im.size[0] > 300 and len(im.getcolors(1 << 16) or range(1000)) > 10
    assert len(json.loads((report / "results.json").read_text())) == 2
    # `polymodal fid` is the same computation: same extractor (and runtime), same KID subsets, same numbers
    assert main(["eval", "generation", "--data", str(generated), "--reference", str(reference), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert main(["fid", str(generated), str(reference), "--extractor", "lite", "--json"]) == 0
    fid = json.loads(capsys.readouterr().out)
    assert fid["extractor"] == ours["extractor"] == "lite"
    assert fid["fid"] == pytest.approx(ours["fid"], rel=1e-6)
    assert fid["kid"] == pytest.approx(ours["kid"]["mean"], rel=1e-6, abs=1e-12)
    assert fid["kid_std"] == pytest.approx(ours["kid"]["std"], rel=1e-6, abs=1e-12)


def test_a_second_run_embeds_nothing(generated, reference, lite) -> None:
    data = load_generated(generated)
    evaluate_generation(data, lite, reference)
    again = evaluate_generation(data, lite, reference)
    assert again.embedded == 0


@pytest.mark.slow
def test_jsonl_and_a_folder_from_polymodal_generate(tmp_path, tiny_sd, lite, capsys) -> None:
    from polymodal.generation import generate

    out = tmp_path / "gen"
    for prompt in ("a red square", "a blue sky"):
        generate(prompt, model=str(tiny_sd), n=2, keep=2, size="16x16", steps=2, seed=1, encoder=lite,
                 device="cpu", out=out)
    data = load_generated(out)
    assert sorted(data.prompts) == ["a blue sky", "a blue sky", "a red square", "a red square"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"image": str(p), "prompt": q}) + "\n" for p, q in zip(data.images,
                                                                                           data.prompts)))
    a, b = evaluate_generation(data, lite), evaluate_generation(load_generated(rows), lite)
    assert a.per_image == b.per_image and a.diversity == b.diversity and a.diversity_prompts == 2
    # the scores `generate` recorded with each image are the CLIPScores the evaluation finds
    from polymodal.generation.provenance import read_provenance

    recorded = [float(read_provenance(p)["score"]) for p in data.images]
    np.testing.assert_allclose(a.per_image, recorded, rtol=1e-4, atol=1e-5)


def test_bad_input_is_refused_with_the_reason(generated, reference, tmp_path, capsys) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    Image.new("RGB", (32, 32)).save(plain / "no-prompt.png")
    with pytest.raises(InputError, match=r"1 image\(s\) carry no prompt.*no-prompt.png"):
        load_generated(plain)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"image": "missing.png", "prompt": "x"}) + "\n")
    with pytest.raises(InputError, match=r"not found: .*missing.png"):
        load_generated(rows)
    rows.write_text(json.dumps({"image": "x.png"}) + "\n")
    with pytest.raises(InputError, match=r"rows.jsonl:1: a row needs non-empty 'image' and 'prompt'"):
        load_generated(rows)
    (tmp_path / "data.csv").write_text("image,prompt\n")
    with pytest.raises(InputError, match=r"use a folder of images saved by `polymodal generate`, or a \.jsonl"):
        load_generated(tmp_path / "data.csv")
    one = tmp_path / "one"
    one.mkdir()
    Image.new("RGB", (32, 32)).save(one / "a.png")
    code = main(["eval", "generation", "--data", str(generated), "--reference", str(one), "--model", "lite"])
    assert code == 4 and "FID/KID need at least 2 images on each side" in capsys.readouterr().err
    code = main(["eval", "generation", "--data", str(generated), "--reference", str(tmp_path / "nope")])
    assert code == 4 and "is not a folder of images" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    from tiny_models import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip")


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generate"))
    from tiny_pipeline import make_tiny_sd

    return make_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")
