"""FID, KID and IS on features that are already extracted.

Features are extracted once per image set (see ``features.py``) and every score reads them, so
``--metrics fid,kid,pr,dc`` runs the network once. KID and IS are torchmetrics' estimators fed
through an identity "feature extractor" (torchmetrics accepts any module there); FID's matrix
square root is computed in the symmetric form below, which tests check against scipy's
``sqrtm`` formula (pytorch-fid / StyleGAN2-ADA) and torchmetrics' implementation to 1e-4.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ..errors import GancvError


def feature_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (the reference implementations' ``np.cov(rowvar=False)``)."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) between two Gaussians.

    Tr((S1 S2)^1/2) is the sum of square roots of the eigenvalues of S1 S2, which equal those
    of the symmetric PSD matrix S1^1/2 S2 S1^1/2; ``eigh`` on that is stable even when a
    covariance is singular (where scipy's ``sqrtm`` needs an epsilon and returns complex noise).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise GancvError(f"FID needs statistics of the same dimension, got {mu1.shape}/{s1.shape} and {mu2.shape}/{s2.shape}")
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def check_fid_samples(n: int, dim: int, which: str) -> None:
    # n samples give a covariance of rank <= n - 1: with fewer than dim + 1 the estimate is
    # singular and FID is dominated by that, not by the images.
    if n < dim + 1:
        raise GancvError(f"FID on {dim}-d features needs at least {dim + 1} {which} samples, got {n}; "
                         f"use {max(dim + 1, 2 * dim)} or more (-n for a run; papers use 50,000 fakes)")


def fid(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor) -> float:
    real_np, fake_np = np.asarray(real), np.asarray(fake)
    check_fid_samples(len(real_np), real_np.shape[1], "real")
    check_fid_samples(len(fake_np), fake_np.shape[1], "fake")
    return frechet_distance(*feature_stats(real_np), *feature_stats(fake_np))


class _Given(nn.Module):
    """An identity "feature extractor": lets torchmetrics' estimators run on precomputed features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (cubic polynomial-kernel unbiased MMD^2) mean and std over subsets."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise GancvError(f"KID needs at least 2 real and 2 fake samples, got {len(real)} and {len(fake)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns that it buffers every feature: ours are small
        metric = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # subsets are drawn with torch.randperm
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """exp(E KL(p(y|x) || p(y))) over ``splits`` splits (the paper's 10), mean and std."""
    from torchmetrics.image.inception import InceptionScore

    if len(logits) < splits:
        raise GancvError(f"IS with {splits} splits needs at least {splits} samples, got {len(logits)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = InceptionScore(feature=_Given(logits.shape[1]), splits=splits)
    metric.update(logits.double())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # torchmetrics shuffles before splitting
        mean, std = metric.compute()
    return float(mean), float(std)
