"""Precision/recall/density/coverage on point sets whose answers are known by hand."""
import pytest
import torch

from gancv.errors import GancvError
from gancv.metrics.prdc import density_coverage, precision_recall

LINE = torch.arange(100, dtype=torch.float64)[:, None]  # real points 0, 1, ..., 99 on a line


def test_identical_sets():
    assert precision_recall(LINE, LINE) == {"precision": 1.0, "recall": 1.0}
    assert density_coverage(LINE, LINE)["coverage"] == 1.0


def test_disjoint_sets():
    far = LINE + 1000
    assert precision_recall(LINE, far) == {"precision": 0.0, "recall": 0.0}
    assert density_coverage(LINE, far) == {"density": 0.0, "coverage": 0.0}


def test_half_covered_line():
    # Fakes are the lower half 0..49. k=3: a real's ball has radius 2 (3 at the ends); the fake
    # at 49 has radius 3, so reals 50, 51, 52 fall inside a fake ball: recall = 53/100. Coverage
    # (nearest fake inside the real's own radius 2): reals 0..49, 50 (distance 1), 51 (2) = 52/100.
    fake = LINE[:50]
    assert precision_recall(LINE, fake, k=3) == pytest.approx({"precision": 1.0, "recall": 0.53})
    assert density_coverage(LINE, fake, k=2)["coverage"] == pytest.approx(0.51)  # radius 1 for k=2


def test_density_against_brute_force():
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(60, 3, generator=gen).double(), (torch.randn(50, 3, generator=gen) * 1.3).double()
    k = 5
    radii = []
    for i in range(len(real)):
        dists = sorted(float((real[i] - real[j]).norm()) for j in range(len(real)) if j != i)
        radii.append(dists[k - 1])
    inside = sum(float((f - r).norm()) <= rad for f in fake for r, rad in zip(real, radii))
    coverage = sum(min(float((r - f).norm()) for f in fake) <= rad for r, rad in zip(real, radii)) / len(real)
    got = density_coverage(real, fake, k=k)
    assert got["density"] == pytest.approx(inside / (k * len(fake)))
    assert got["coverage"] == pytest.approx(coverage)


def test_too_few_points():
    with pytest.raises(GancvError, match="k=3"):
        precision_recall(LINE[:3], LINE)
