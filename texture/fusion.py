"""Fuse partial textures from several views into one.

Per texel, over the views that saw it (confidence > 0):

1. the confidence-weighted median of the samples' luminance (Rec. 601 weights) picks a
   reference; a view whose colour is far from the others (a fitting error that put
   background or an arm on the texel) cannot move a median;
2. the fused colour is the confidence-weighted mean of the samples whose luminance lies
   within ``inlier_range`` of that median, which averages the noise of agreeing views
   without reintroducing the outliers.

The fused confidence is the largest confidence of any view (so fusing copies of one
sample returns it unchanged).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from texture.bake import TextureSample

LUMA = np.array([0.299, 0.587, 0.114], np.float32)

#: Texels processed at once (bounds the (views, texels, 3) working arrays).
CHUNK_TEXELS = 1 << 17


def fuse_textures(samples: Sequence[TextureSample], inlier_range: float = 0.1) -> TextureSample:
    """Combine ``samples`` (same atlas size) as the module docstring describes."""
    if len(samples) == 0:
        raise ValueError("fuse_textures needs at least one sample")
    shape = samples[0].colour.shape
    for i, s in enumerate(samples):
        if s.colour.shape != shape or s.confidence.shape != shape[:2]:
            raise ValueError(f"sample {i}: shape {s.colour.shape} differs from sample 0's {shape}")
    confidence = np.stack([s.confidence.reshape(-1) for s in samples])  # (K, T)
    seen = np.flatnonzero((confidence > 0).any(axis=0))
    fused = np.zeros((shape[0] * shape[1], 3), np.float32)
    for start in range(0, len(seen), CHUNK_TEXELS):
        texels = seen[start:start + CHUNK_TEXELS]
        colours = np.stack([s.colour.reshape(-1, 3)[texels] for s in samples])  # (K, n, 3)
        fused[texels] = _robust_mean(colours, confidence[:, texels], inlier_range)
    return TextureSample(fused.reshape(shape), confidence.max(axis=0).reshape(shape[:2]))


def _robust_mean(colours: np.ndarray, weights: np.ndarray, inlier_range: float) -> np.ndarray:
    """(n, 3) fused colour of (K, n, 3) samples with (K, n) weights (each texel has one > 0)."""
    luma = colours @ LUMA  # (K, n)
    order = np.argsort(np.where(weights > 0, luma, np.inf), axis=0)
    sorted_weights = np.take_along_axis(weights, order, axis=0)
    cumulative = np.cumsum(sorted_weights, axis=0)
    median_rank = np.argmax(cumulative >= 0.5 * cumulative[-1], axis=0)  # first to reach half
    median = np.take_along_axis(np.take_along_axis(luma, order, axis=0), median_rank[None], axis=0)[0]
    inlier = (weights > 0) & (np.abs(luma - median) <= inlier_range)
    w = np.where(inlier, weights, 0.0).astype(np.float32)
    return np.einsum("kn,knc->nc", w, colours) / w.sum(axis=0)[:, None]
