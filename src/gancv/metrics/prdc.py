"""Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

All four compare k-nearest-neighbour balls in feature space:

* precision: share of fakes inside some real sample's k-NN ball (fakes look real);
* recall: share of reals inside some fake sample's k-NN ball (reals are covered by the model);
* density: how many real balls contain each fake, averaged and divided by k (1 = as dense as real);
* coverage: share of reals whose ball contains at least one fake.

Distances are computed in row blocks so 10k x 10k never materialises more than a block.
"""
from __future__ import annotations

import torch

from ..errors import GancvError

BLOCK = 2048


def _kth_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the row itself excluded)."""
    if len(x) <= k:
        raise GancvError(f"k-NN metrics with k={k} need more than {k} samples per set, got {len(x)}")
    radii = []
    for i in range(0, len(x), BLOCK):
        d = torch.cdist(x[i : i + BLOCK], x)
        # k + 1 smallest: the first is the point itself at distance 0.
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def _ball_counts(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """For each query, how many centres' balls (distance <= radius) contain it."""
    counts = []
    for i in range(0, len(queries), BLOCK):
        d = torch.cdist(queries[i : i + BLOCK], centres)
        counts.append((d <= radii[None, :]).sum(1))
    return torch.cat(counts)


def _prep(x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x).double()


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict[str, float]:
    real, fake = _prep(real), _prep(fake)
    precision = (_ball_counts(fake, real, _kth_radius(real, k)) > 0).double().mean()
    recall = (_ball_counts(real, fake, _kth_radius(fake, k)) > 0).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict[str, float]:
    real, fake = _prep(real), _prep(fake)
    radii = _kth_radius(real, k)
    density = _ball_counts(fake, real, radii).double().mean() / k
    # coverage: a real sample counts when its nearest fake lies inside its own ball.
    nearest = torch.cat([torch.cdist(real[i : i + BLOCK], fake).min(1).values for i in range(0, len(real), BLOCK)])
    coverage = (nearest <= radii).double().mean()
    return {"density": float(density), "coverage": float(coverage)}
