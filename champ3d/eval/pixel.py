"""Pixel metrics between predicted and ground-truth frames: L1, PSNR and SSIM.

Conventions (owned here for the whole metric layer):

- A batch of frames is a numpy ``uint8`` array ``[N, H, W, 3]``, RGB, values 0..255;
  prediction and ground truth have equal shapes and are paired frame by frame.
- Every metric returns one ``float64`` value per frame, shape ``[N]``; aggregation over
  frames and videos happens in :mod:`champ3d.eval.stats`.

Each metric is configured by a frozen spec. The ``legacy`` and ``clean`` profiles
(:mod:`champ3d.eval.registry`) are different spec values, so the quirks of the published
tables live in data, not in branches on a profile name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

PEAK = 255.0
"""Peak value of the uint8 scale; PSNR on 0..255 with peak 255 equals PSNR on [0,1] with peak 1."""


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.dtype != np.uint8 or gt.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {pred.dtype} and {gt.dtype}")
    if pred.ndim != 4 or pred.shape[-1] != 3 or pred.shape != gt.shape:
        raise ValueError(f"frames must be equal [N, H, W, 3] arrays, got {pred.shape} and {gt.shape}")


def rgb_to_gray_bt601(frames: np.ndarray) -> np.ndarray:
    """uint8 ``[..., 3]`` RGB to uint8 ``[...]`` luma, bit-exact with OpenCV's 8-bit RGB2GRAY.

    OpenCV rounds ``0.299 R + 0.587 G + 0.114 B`` in 15-bit fixed point; DisCo's SSIM runs on
    that image (``cv2.COLOR_BGR2GRAY`` on BGR reads is the same conversion).
    """
    f = frames.astype(np.int32)
    return ((f[..., 0] * 9798 + f[..., 1] * 19235 + f[..., 2] * 3735 + (1 << 14)) >> 15).astype(np.uint8)


@dataclass(frozen=True)
class L1Spec:
    """Mean absolute error over pixels and channels.

    ``normaliser``:
      - ``"unit_range"``: on the [0,1] scale (mean |diff| / 255).
      - ``"pixel_count"``: DisCo's definition, mean |diff| on the 0..255 scale divided by H*W
        (so the value depends on the resolution the metric is computed at).
    """

    normaliser: Literal["unit_range", "pixel_count"]


def l1(pred: np.ndarray, gt: np.ndarray, spec: L1Spec) -> np.ndarray:
    _check_pair(pred, gt)
    diff = np.abs(pred.astype(np.int16) - gt.astype(np.int16))
    mean_abs = diff.reshape(len(diff), -1).mean(axis=1, dtype=np.float64)
    if spec.normaliser == "unit_range":
        return mean_abs / PEAK
    height, width = pred.shape[1:3]
    return mean_abs / float(height * width)


@dataclass(frozen=True)
class PSNRSpec:
    """``10 log10(255^2 / MSE)`` per frame, MSE over pixels and channels.

    ``uint8_wraparound``: square the difference in uint8 arithmetic, which wraps modulo 256
    (the DisCo code before its fix; "PSNR" columns near 29 dB on TikTok / 38 dB on UBC).
    Otherwise MSE is exact in float64 (the corrected value, "PSNR*").
    ``zero_mse_db``: value returned for identical frames (DisCo returns 100; the
    mathematical value is infinity).
    """

    uint8_wraparound: bool
    zero_mse_db: float


def psnr(pred: np.ndarray, gt: np.ndarray, spec: PSNRSpec) -> np.ndarray:
    _check_pair(pred, gt)
    if spec.uint8_wraparound:
        squared = (pred - gt) ** 2  # uint8 arithmetic on purpose: reproduces the overflow
    else:
        d = pred.astype(np.float64) - gt.astype(np.float64)
        squared = d * d
    mse = squared.reshape(len(squared), -1).mean(axis=1, dtype=np.float64)
    out = np.full(len(mse), spec.zero_mse_db, dtype=np.float64)
    nonzero = mse > 0
    out[nonzero] = 10.0 * np.log10(PEAK * PEAK / mse[nonzero])
    return out


@dataclass(frozen=True)
class SSIMSpec:
    """Structural similarity (Wang et al. 2004), the scikit-image formulation.

    ``colour``: ``"gray_bt601"`` runs on :func:`rgb_to_gray_bt601` luma (DisCo);
    ``"rgb"`` runs per channel and averages the channels.
    ``window``: ``"uniform"`` box of ``2*radius+1`` pixels, or ``"gaussian"`` with ``sigma``
    truncated at ``radius`` pixels. Filters reflect at the image border, and a band of
    ``radius`` pixels is left out of the mean (as scikit-image does).
    ``sample_covariance``: scale (co)variances by NP/(NP-1), NP the window's pixel count
    (scikit-image's default; Wang et al. use the population covariance).
    Constants: C1 = (k1*255)^2, C2 = (k2*255)^2 on the uint8 scale.
    """

    colour: Literal["gray_bt601", "rgb"]
    window: Literal["uniform", "gaussian"]
    radius: int
    sample_covariance: bool
    sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03


def ssim(pred: np.ndarray, gt: np.ndarray, spec: SSIMSpec) -> np.ndarray:
    _check_pair(pred, gt)
    if spec.colour == "gray_bt601":
        x, y = rgb_to_gray_bt601(pred), rgb_to_gray_bt601(gt)
        spatial = (0, spec.radius, spec.radius)
    else:
        x, y = pred, gt
        spatial = (0, spec.radius, spec.radius, 0)
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    width = 2 * spec.radius + 1
    if min(x.shape[1:3]) < width:
        raise ValueError(f"frames of {x.shape[1]}x{x.shape[2]} are smaller than the {width}x{width} SSIM window")

    if spec.window == "uniform":
        sizes = tuple(2 * r + 1 for r in spatial)

        def window_mean(a: np.ndarray) -> np.ndarray:
            return ndimage.uniform_filter(a, size=sizes, mode="reflect")
    else:
        sigmas = tuple(spec.sigma if r else 0.0 for r in spatial)

        def window_mean(a: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(a, sigma=sigmas, mode="reflect", radius=spatial)

    count = width * width
    cov_norm = count / (count - 1) if spec.sample_covariance else 1.0
    ux, uy = window_mean(x), window_mean(y)
    vx = cov_norm * (window_mean(x * x) - ux * ux)
    vy = cov_norm * (window_mean(y * y) - uy * uy)
    vxy = cov_norm * (window_mean(x * y) - ux * uy)
    c1 = (spec.k1 * PEAK) ** 2
    c2 = (spec.k2 * PEAK) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    r = spec.radius
    s = s[:, r:-r, r:-r]
    return s.reshape(len(s), -1).mean(axis=1, dtype=np.float64)
