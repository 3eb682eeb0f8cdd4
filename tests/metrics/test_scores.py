"""The maths of FID, KID and IS against direct computations."""
import numpy as np
import pytest
import scipy.linalg
import torch

from gancv.errors import GancvError
from gancv.metrics.scores import _Given, feature_stats, fid, frechet_distance, inception_score, kid


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-fid / StyleGAN2-ADA's formula: scipy's sqrtm of the covariance product."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _sets(seed=0, n=400, d=16):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    a = rng.normal(size=(n, d)) @ mix
    b = rng.normal(size=(n, d)) @ (mix + 0.3 * rng.normal(size=(d, d))) + 0.5
    return a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_matches_scipy_formula(seed):
    a, b = _sets(seed)
    ours, ref = fid(a, b), scipy_fid(a, b)
    assert ref > 1.0
    assert ours == pytest.approx(ref, rel=1e-4)


def test_frechet_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = _sets(3)
    metric = FrechetInceptionDistance(feature=_Given(a.shape[1]))
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    assert fid(a, b) == pytest.approx(float(metric.compute()), rel=1e-4)


def test_fid_of_a_set_with_itself_is_zero():
    a, _ = _sets(4)
    assert abs(fid(a, a)) < 1e-6 * np.trace(np.cov(a, rowvar=False))


def test_fid_grows_with_noise():
    a, _ = _sets(5)
    rng = np.random.default_rng(6)
    noise = rng.normal(size=a.shape)
    values = [fid(a, a + s * noise) for s in (0.1, 0.5, 1.0, 2.0, 4.0)]
    assert all(x < y for x, y in zip(values, values[1:])), values


def test_frechet_is_finite_for_singular_covariances():
    rng = np.random.default_rng(7)
    low_rank = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 10))  # rank 3 in 10-d
    mu, s = feature_stats(low_rank)
    value = frechet_distance(mu, s, mu + 1.0, s)
    assert np.isfinite(value) and value == pytest.approx(10.0, rel=1e-6)  # only the mean moved, by 1 in each dim


def test_fid_needs_more_samples_than_dimensions():
    a = np.random.default_rng(0).normal(size=(20, 32))
    with pytest.raises(GancvError, match="at least 33"):
        fid(a, a)


def numpy_unbiased_mmd(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda p, q: (p @ q.T / d + 1.0) ** 3  # noqa: E731  (KID's cubic polynomial kernel)
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def test_kid_is_the_unbiased_polynomial_mmd():
    a, b = _sets(8, n=150, d=8)
    mean, std = kid(torch.from_numpy(a), torch.from_numpy(b), subsets=1, subset_size=150)
    assert mean == pytest.approx(numpy_unbiased_mmd(a, b), rel=1e-6) and std == 0.0


def test_kid_is_unbiased_on_identical_distributions():
    rng = np.random.default_rng(9)
    x, y = torch.from_numpy(rng.normal(size=(600, 8))), torch.from_numpy(rng.normal(size=(600, 8)))
    means = [kid(x, y, subsets=50, subset_size=100, seed=s)[0] for s in range(4)]
    shifted, _ = kid(x, y + 0.5, subsets=50, subset_size=100)
    # The biased (V-statistic) MMD^2 would sit near 2 E[k(x,x) - k(x,y)] / m > 0 for m = 100; the
    # unbiased one centres on 0 for two samples of one distribution.
    d = 8
    # E k(x, y) = 1 + 3/d for independent standard normals (odd moments vanish, E (x.y)^2 = d).
    biased_offset = 2 * (np.mean(((x * x).sum(1).numpy() / d + 1) ** 3) - (1 + 3 / d)) / 100
    assert abs(np.mean(means)) < 0.1 * biased_offset and shifted > 2 * biased_offset


def test_inception_score_bounds():
    k = 10
    uniform = torch.zeros(500, k)
    assert inception_score(uniform)[0] == pytest.approx(1.0, abs=1e-6)
    confident = torch.full((500, k), -30.0)
    confident[torch.arange(500), torch.arange(500) % k] = 30.0
    assert inception_score(confident, splits=1)[0] == pytest.approx(k, rel=1e-6)  # all classes, each certain: IS = K
    # 10 random splits of 50: each split's class histogram is a little uneven, so IS dips below K.
    assert 9.0 < inception_score(confident, splits=10)[0] < k
    collapsed = torch.full((500, k), -30.0)
    collapsed[:, 0] = 30.0
    assert inception_score(collapsed)[0] == pytest.approx(1.0, abs=1e-3)  # one mode: IS = 1
