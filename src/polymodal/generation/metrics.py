"""Generation metrics: CLIPScore, candidate diversity, and FID / KID between two image folders.

FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) are only comparable when computed on the same
feature extractor. The classic one is Inception-v3 (pool3, 2048-d), whose weights polymodal cannot fetch
offline; here the extractor is any polymodal encoder (``lite``, a CLIP model...) and every report names it,
as Kynkäänniemi et al. 2023 ("The Role of ImageNet Classes in FID") and Stein et al. 2023 recommend richer
non-Inception features anyway. Features are the encoder's L2-normalised image embeddings.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.errors import InputError

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

#: CLIPScore's rescaling weight (Hessel et al. 2021, "CLIPScore: A Reference-free Evaluation Metric for Image
#: Captioning"): w = 2.5 stretches ViT-B/32's cosines, which rarely pass 0.4, towards [0, 1].
CLIPSCORE_W = 2.5


def clip_score(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """CLIPScore = 2.5 · max(cos, 0) of each image against its text (one text broadcasts to all images)."""
    a = _unit(np.atleast_2d(image_emb))
    b = _unit(np.atleast_2d(text_emb))
    if b.shape[0] == 1:
        b = np.broadcast_to(b, a.shape)
    if a.shape != b.shape:
        raise InputError(f"CLIPScore needs one text per image or one for all, got {a.shape[0]} images and "
                         f"{b.shape[0]} texts")
    cos = np.sum(a.astype(np.float64) * b, axis=1)
    return CLIPSCORE_W * np.maximum(cos, 0.0)


def diversity(emb: np.ndarray) -> float:
    """Mean pairwise cosine distance (1 − cos) over all pairs of candidates; 0 for fewer than two."""
    x = _unit(np.atleast_2d(emb)).astype(np.float64)
    n = x.shape[0]
    if n < 2:
        return 0.0
    sim = x @ x.T
    iu = np.triu_indices(n, k=1)
    return float(np.mean(1.0 - sim[iu]))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½).

    Tr((Σ1 Σ2)^½) is the sum of the square roots of the eigenvalues of Σ1 Σ2, which are real and ≥ 0 for
    two PSD matrices (Σ1 Σ2 is similar to Σ1^½ Σ2 Σ1^½). This avoids the matrix square root (scipy's sqrtm in
    pytorch-fid), which turns complex and needs an ε-jitter on the singular covariances of small sets.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    eig = np.linalg.eigvals(s1 @ s2)
    tr_sqrt = float(np.sum(np.sqrt(np.clip(eig.real, 0.0, None))))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two sets of features (rows), with unbiased (n − 1) covariances as in pytorch-fid."""
    a, b = _check_sets(feats_a, feats_b, 2)
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # KID's kernel: (x·y / d + 1)^3 (Bińkowski et al. 2018)
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel; sets may differ in size."""
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.sum() / (m * n))


def kid(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """KID as mean and standard deviation of MMD² over random equal-size subsets (as clean-fid/torchmetrics).

    ``subset_size`` is capped at the smaller set; with subsets=1 and the whole sets this is one exact MMD².
    """
    a, b = _check_sets(feats_a, feats_b, 2)
    size = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(max(1, subsets)):
        ia = rng.choice(a.shape[0], size, replace=False) if size < a.shape[0] else np.arange(size)
        ib = rng.choice(b.shape[0], size, replace=False) if size < b.shape[0] else np.arange(size)
        values.append(mmd2_unbiased(a[ia], b[ib]))
    return float(np.mean(values)), float(np.std(values))


def _check_sets(a: Any, b: Any, least: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InputError(f"feature sets must be (N, D) with the same D, got {a.shape} and {b.shape}")
    if a.shape[0] < least or b.shape[0] < least:
        raise InputError(f"each set needs at least {least} images, got {a.shape[0]} and {b.shape[0]}")
    return a, b


@dataclass(frozen=True)
class FolderComparison:
    """FID and KID between two folders, with what they were computed on."""

    fid: float
    kid: float  # mean MMD² over subsets
    kid_std: float
    extractor: str  # the encoder spec: numbers are only comparable under the same one
    dim: int  # feature width
    n_a: int
    n_b: int
    folder_a: str
    folder_b: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def images_in(folder: str | os.PathLike[str]) -> list[Path]:
    from polymodal.library.scan import image_extensions

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"{root} is not a folder of images")
    exts = image_extensions()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    if not files:
        raise InputError(f"no images in {root}")
    return files


def compare_folders(folder_a: str | os.PathLike[str], folder_b: str | os.PathLike[str],
                    extractor: str | Encoder = "lite", *, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> FolderComparison:
    """FID and KID between the images of two folders (recursively), on ``extractor``'s image embeddings."""
    from polymodal.models import load_model
    from polymodal.models.base import Encoder

    enc = extractor if isinstance(extractor, Encoder) else load_model(extractor)
    fa = enc.encode_images(images_in(folder_a))
    fb = enc.encode_images(images_in(folder_b))
    return compare_features(fa, fb, enc.name, str(folder_a), str(folder_b), subsets=subsets,
                            subset_size=subset_size, seed=seed)


def compare_features(feats_a: np.ndarray, feats_b: np.ndarray, extractor: str, folder_a: str = "",
                     folder_b: str = "", *, subsets: int = 100, subset_size: int = 1000,
                     seed: int = 0) -> FolderComparison:
    """FID and KID between two sets of image features already computed by ``extractor`` (the one place both
    ``polymodal fid`` and ``polymodal eval generation`` compute them)."""
    a, b = _check_sets(feats_a, feats_b, 2)
    k_mean, k_std = kid(a, b, subsets=subsets, subset_size=subset_size, seed=seed)
    return FolderComparison(fid(a, b), k_mean, k_std, extractor, a.shape[1], len(a), len(b), folder_a, folder_b)
