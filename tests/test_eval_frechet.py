"""Fréchet distance against the scipy.linalg.sqrtm formulation used by pytorch-fid / DisCo."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from champ3d.eval import frechet_distance


def sqrtm_reference(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root.real))


@pytest.mark.parametrize("n, m, dim", [(300, 200, 16), (500, 800, 64), (120, 90, 40)])
def test_matches_sqrtm_reference(n, m, dim):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(n, dim))
    b = rng.normal(size=(m, dim)) @ rng.normal(size=(dim, dim)) * 0.4 + rng.normal(size=dim)
    assert frechet_distance(a, b) == pytest.approx(sqrtm_reference(a, b), rel=1e-9)


def test_fewer_samples_than_dimensions():
    """Singular covariances: sqrtm is only approximate there, the closed form stays exact."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 64)), rng.normal(size=(40, 64)) + 0.3
    assert frechet_distance(a, b) == pytest.approx(sqrtm_reference(a, b), rel=1e-6)


def test_identical_sets_give_zero():
    rng = np.random.default_rng(2)
    for n, dim in ((50, 2048), (400, 32)):
        a = rng.normal(size=(n, dim)).astype(np.float32) * 3 + 5
        assert abs(frechet_distance(a, a)) < 1e-9 * float(np.sum(np.var(a, axis=0)))


def test_gaussians_with_shifted_means():
    """Two samples of N(0, I) and N(d, I): the distance tends to |d|^2."""
    rng = np.random.default_rng(3)
    shift = np.array([3.0, -4.0, 0.0, 0.0])
    a, b = rng.normal(size=(200_000, 4)), rng.normal(size=(200_000, 4)) + shift
    assert frechet_distance(a, b) == pytest.approx(25.0, abs=0.05)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\[n, D\]"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
