"""Generation metrics checked against torchmetrics' FID/KID and against cases worked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.errors import InputError
from polymodal.generation.metrics import (
    clip_score,
    compare_folders,
    diversity,
    fid,
    frechet_distance,
    kid,
    mmd2_unbiased,
)


def test_clip_score_is_2_5_times_positive_cosine() -> None:
    text = np.array([[1.0, 0.0]])
    images = np.array([[np.cos(0.3), np.sin(0.3)], [0.0, 3.0], [-1.0, 0.2], [2.0, 0.0]])
    s = clip_score(images, text)
    assert s == pytest.approx([2.5 * np.cos(0.3), 0.0, 0.0, 2.5])  # unnormalised rows are normalised first
    with pytest.raises(InputError, match="one text per image"):
        clip_score(images, np.ones((2, 2)))


def test_diversity_is_mean_pairwise_cosine_distance() -> None:
    assert diversity(np.eye(3)) == pytest.approx(1.0)
    assert diversity(np.ones((4, 5))) == pytest.approx(0.0)
    assert diversity(np.ones((1, 5))) == 0.0
    # angles 0, 60 and 120 degrees in a plane: distances 1-cos60, 1-cos120, 1-cos60 = 0.5, 1.5, 0.5
    v = np.array([[1.0, 0.0], [np.cos(np.pi / 3), np.sin(np.pi / 3)], [np.cos(2 * np.pi / 3), np.sin(2 * np.pi / 3)]])
    assert diversity(v) == pytest.approx((0.5 + 1.5 + 0.5) / 3)


def test_frechet_distance_by_hand() -> None:
    # 1-D: (m1 - m2)^2 + s1^2 + s2^2 - 2 s1 s2 = (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == \
        pytest.approx(4.0 + 1.0)
    # diagonal covariances: sum over axes of the 1-D case
    d = frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 1.0]), np.diag([4.0, 16.0]))
    assert d == pytest.approx(2.0 + (1 - 2) ** 2 + (2 - 4) ** 2)


def test_fid_matches_torchmetrics_formula_and_is_zero_on_itself() -> None:
    from torchmetrics.image.fid import _compute_fid

    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    b = rng.normal(0.3, 1.5, size=(150, 8)) @ rng.normal(size=(8, 8))
    ref = _compute_fid(torch.tensor(a.mean(0)), torch.tensor(np.cov(a, rowvar=False)),
                       torch.tensor(b.mean(0)), torch.tensor(np.cov(b, rowvar=False)))
    assert fid(a, b) == pytest.approx(float(ref), rel=1e-9)
    assert abs(fid(a, a)) < 1e-8
    assert fid(a, b) > 1.0


class _Pool(torch.nn.Module):
    """A fixed feature extractor torchmetrics can run images through: 4x4 average colours (48-d)."""

    num_features = 48

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x.double() / 255.0, 4).flatten(1)


def test_fid_and_kid_match_torchmetrics_end_to_end() -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (60, 3, 32, 32), dtype=torch.uint8, generator=g)
    fake = (torch.randint(0, 200, (60, 3, 32, 32), dtype=torch.uint8, generator=g) + 40).clamp(0, 255).to(torch.uint8)
    fx = _Pool()
    fa, fb = fx(real).numpy(), fx(fake).numpy()
    tm_fid = FrechetInceptionDistance(feature=fx)
    tm_fid.set_dtype(torch.float64)
    tm_fid.update(real, real=True)
    tm_fid.update(fake, real=False)
    assert fid(fa, fb) == pytest.approx(float(tm_fid.compute()), rel=1e-6)
    tm_kid = KernelInceptionDistance(feature=fx, subsets=1, subset_size=60)
    tm_kid.update(real, real=True)
    tm_kid.update(fake, real=False)
    kid_mean, _ = tm_kid.compute()
    ours, ours_std = kid(fa, fb, subsets=1, subset_size=60)
    assert ours == pytest.approx(float(kid_mean), rel=1e-4, abs=1e-7) and ours_std == 0.0
    assert ours > 0


def test_kid_by_hand_on_two_points_each() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 1.0], [2.0, 0.0]])

    def k(u: np.ndarray, v: np.ndarray) -> float:
        return float((u @ v / 2 + 1) ** 3)

    kxx = 2 * k(x[0], x[1]) / 2
    kyy = 2 * k(y[0], y[1]) / 2
    kxy = sum(k(u, v) for u in x for v in y) / 4
    assert mmd2_unbiased(x, y) == pytest.approx(kxx + kyy - 2 * kxy)
    mean, std = kid(x, y, subsets=5, subset_size=10)  # capped at 2: every subset is the whole set
    assert mean == pytest.approx(kxx + kyy - 2 * kxy) and std == pytest.approx(0.0)


def test_sets_too_small_or_mismatched() -> None:
    with pytest.raises(InputError, match="at least 2 images"):
        fid(np.ones((1, 3)), np.ones((5, 3)))
    with pytest.raises(InputError, match="same D"):
        kid(np.ones((4, 3)), np.ones((4, 2)))


def _folder(root: Path, colours: list[tuple[int, int, int]]) -> Path:
    from PIL import Image, ImageDraw

    root.mkdir()
    for i, c in enumerate(colours):
        img = Image.new("RGB", (48, 48), c)
        ImageDraw.Draw(img).ellipse((8 + i, 8, 30 + i, 40), fill=(255 - c[0], c[2], c[1]))
        img.save(root / f"{i}.png")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.mark.slow
def test_compare_folders_names_its_extractor(scorer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    warm = _folder(tmp_path / "warm", [(230, 40 + 10 * i, 20) for i in range(6)])
    cool = _folder(tmp_path / "cool", [(20, 60 + 10 * i, 220) for i in range(6)])
    res = compare_folders(warm, cool, scorer, subsets=10, subset_size=4)
    assert res.extractor == "lite" and res.dim == 384 and (res.n_a, res.n_b) == (6, 6)
    assert res.fid > 0 and res.kid > 0
    same = compare_folders(warm, warm, scorer, subsets=1, subset_size=6)
    assert abs(same.fid) < 1e-6 and res.fid > 10 * abs(same.fid)
    from polymodal.cli import main

    assert main(["fid", str(warm), str(cool), "--extractor", "lite", "--subsets", "10", "--subset-size", "4",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["extractor"] == "lite" and out["fid"] == pytest.approx(res.fid, rel=1e-3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images in"):
        compare_folders(warm, tmp_path / "empty", scorer)
    with pytest.raises(InputError, match="is not a folder of images"):
        compare_folders(warm, tmp_path / "missing", scorer)
