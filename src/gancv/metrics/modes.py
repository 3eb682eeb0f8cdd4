"""Mode-collapse metrics of the PacGAN protocol (Lin et al. 2018), as pure functions.

Toy 2-D mixtures: each sample is assigned to its nearest mode centre; it is *high quality*
when it lies within ``3 * std`` of that centre; a mode is *covered* when at least one
high-quality sample is assigned to it; the *reverse KL* is KL(generated || true) between the
histogram of modes over the high-quality samples and the (uniform) true mode distribution.
Stacked digits: the mode of a sample is its three classified digits (000..999) and the reverse
KL is taken over all samples, as in the paper's stacked-MNIST table.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch


def reverse_kl(counts: np.ndarray | torch.Tensor | list[int]) -> float | None:
    """KL(p || uniform) of a mode histogram: sum_k p_k log(K p_k), with 0 log 0 = 0.

    ``counts`` has one entry per mode, covered or not (its length is K). Reverse KL is what
    punishes collapse: a generator putting everything on one of K modes scores log K, a
    perfectly even one scores 0. ``None`` when the histogram is empty (the KL is undefined).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or (c < 0).any():
        raise ValueError(f"counts must be a non-empty 1-D histogram of non-negative counts, got shape {c.shape}")
    total = c.sum()
    if total == 0:
        return None
    p = c[c > 0] / total
    return float((p * np.log(p * c.size)).sum())


@dataclass
class ModeScore:
    n: int                  # samples scored
    modes: int              # modes in the true distribution
    covered: int            # modes with at least one high-quality sample
    high_quality: float     # share of samples within 3 std of their nearest mode
    reverse_kl: float | None  # KL(histogram of high-quality samples || uniform); None if none are high quality
    counts: list[int]       # high-quality samples per mode

    def as_dict(self) -> dict:
        d = asdict(self)
        d["high_quality"] = round(self.high_quality, 4)
        d["reverse_kl"] = None if self.reverse_kl is None else round(self.reverse_kl, 4)
        return d


def nearest_modes(points: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the nearest centre, Euclidean distance to it) for each of ``points`` (N, D)."""
    if points.dim() != 2 or centres.dim() != 2 or points.shape[1] != centres.shape[1]:
        raise ValueError(f"points (N, D) and centres (M, D) must share D, got {tuple(points.shape)} and {tuple(centres.shape)}")
    dist = torch.cdist(points.double(), centres.double())
    d, idx = dist.min(dim=1)
    return idx, d


def score_modes(points: torch.Tensor, centres: torch.Tensor, std: float, radius: float = 3.0) -> ModeScore:
    """Score generated 2-D points against a Gaussian mixture with isotropic per-axis ``std``."""
    points = torch.as_tensor(points)
    if points.shape[0] == 0:
        raise ValueError("no samples to score")
    idx, dist = nearest_modes(points, torch.as_tensor(centres))
    good = dist <= radius * std
    # Non-finite samples (a diverged G) are never high quality: NaN comparisons are already False.
    counts = torch.bincount(idx[good], minlength=centres.shape[0])
    return ModeScore(
        n=int(points.shape[0]),
        modes=int(centres.shape[0]),
        covered=int((counts > 0).sum()),
        high_quality=float(good.double().mean()),
        reverse_kl=reverse_kl(counts.numpy()),
        counts=counts.tolist(),
    )


@dataclass
class StackedScore:
    n: int
    modes: int
    covered: int              # distinct 3-digit classes seen among the samples
    reverse_kl: float | None  # KL(histogram over 1,000 classes || uniform)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["reverse_kl"] = None if self.reverse_kl is None else round(self.reverse_kl, 4)
        return d


def stacked_modes(digit_classes: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, 3) per-channel digit classes -> (N,) mode index 100*r + 10*g + b (the data's label)."""
    d = np.asarray(digit_classes, dtype=np.int64)
    if d.ndim != 2 or d.shape[1] != 3 or d.min(initial=0) < 0 or d.max(initial=0) > 9:
        raise ValueError(f"expected (N, 3) digit classes in 0..9, got shape {d.shape}")
    return d @ np.array([100, 10, 1])


def score_stacked(digit_classes: np.ndarray | torch.Tensor, modes: int = 1000) -> StackedScore:
    idx = stacked_modes(digit_classes)
    counts = np.bincount(idx, minlength=modes)
    return StackedScore(n=int(idx.size), modes=modes, covered=int((counts > 0).sum()), reverse_kl=reverse_kl(counts))


def uniform_kl_floor(n: int, modes: int) -> float:
    """The reverse KL a *perfect* sampler shows on average with ``n`` samples, (K - 1) / 2n: the
    finite-sample floor to read small KL figures against (first-order expansion, n >> K)."""
    return (modes - 1) / (2.0 * n)


def summarise(values: list[float | None]) -> dict:
    """Mean and (population) std over seeds; seeds whose value is undefined are counted apart."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "undefined": len(values)}
    arr = np.asarray(vals, dtype=np.float64)
    return {"mean": round(float(arr.mean()), 4), "std": round(float(arr.std()), 4), "undefined": len(values) - len(vals)}
