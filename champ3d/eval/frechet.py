"""Fréchet distance between two feature sets (FID, FID-VID, FVD).

Each set ``[n, D]`` (one row per frame or clip) is summarised by its mean and unbiased
sample covariance (``np.cov``), and

    d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)).

The trace of the square root is computed without ``scipy.linalg.sqrtm``: with centred
features ``X_a`` (n x D) and ``X_b`` (m x D), S_a S_b has the same non-zero eigenvalues as
``(X_a X_b^T)(X_a X_b^T)^T / ((n-1)(m-1))``, so the trace equals the sum of the singular
values of ``X_a X_b^T`` divided by ``sqrt((n-1)(m-1))``. This is exact, real-valued, and
well defined when the covariances are singular (fewer samples than dimensions), where
``sqrtm`` needs an ad-hoc diagonal offset. When a set has more rows than columns it is
first replaced by the triangular factor of its QR decomposition, which has the same Gram
matrix, so the cost is bounded by ``min(n, D) x min(m, D)``.
"""
from __future__ import annotations

import numpy as np


def _row_space(centred: np.ndarray) -> np.ndarray:
    """A matrix with the same Gram matrix ``X^T X`` and at most ``D`` rows."""
    if centred.shape[0] > centred.shape[1]:
        return np.linalg.qr(centred, mode="r")
    return centred


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``features_a [n, D]`` and ``features_b [m, D]``."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be [n, D] and [m, D], got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"a covariance needs at least 2 samples per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    xa, xb = a - mu_a, b - mu_b
    norm_a, norm_b = len(a) - 1, len(b) - 1
    trace_a = float(np.sum(xa * xa)) / norm_a
    trace_b = float(np.sum(xb * xb)) / norm_b
    cross = _row_space(xa) @ _row_space(xb).T
    trace_sqrt = float(np.linalg.svd(cross, compute_uv=False).sum()) / np.sqrt(norm_a * norm_b)
    diff = mu_a - mu_b
    return float(diff @ diff) + trace_a + trace_b - 2.0 * trace_sqrt
