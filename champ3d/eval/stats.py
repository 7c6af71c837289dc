"""Aggregation over frames and videos, with video-level bootstrap confidence intervals.

Videos are the independent units: frames of one video are strongly correlated, so every
interval resamples whole videos with replacement (the same resampled video sets for every
metric of a run, drawn from ``numpy.random.default_rng(seed)``) and reports the percentile
interval of the recomputed statistic.

Frame metrics report two aggregates: ``frame_pooled`` (mean over all frames, what the
published tables print) and ``video_macro`` (mean of per-video means). Video metrics (one
value per video) report the mean over the videos whose value is defined (not NaN).
Distribution metrics are computed once on the pooled feature rows of all videos.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from champ3d.eval.frechet import frechet_distance


@dataclass(frozen=True)
class BootstrapConfig:
    samples: int = 1000               # replicates for frame metrics
    distribution_samples: int = 100   # replicates for FID / FID-VID / FVD (each one a Fréchet distance)
    confidence: float = 0.95
    seed: int = 0


def resample_videos(num_videos: int, samples: int, seed: int) -> np.ndarray:
    """``[samples, num_videos]`` video indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, num_videos, size=(samples, num_videos))


def percentile_interval(values: np.ndarray, confidence: float) -> list[float]:
    """Central percentile interval of the replicates that are not NaN; [nan, nan] if none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return [float("nan"), float("nan")]
    tail = 100.0 * (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"):  # infinite replicates (PSNR of identical frames) interpolate to inf
        low, high = np.percentile(values, [tail, 100.0 - tail])
    return [float(low), float(high)]


def _std(values: np.ndarray) -> float:
    """Sample standard deviation; NaN below two values or when a value is infinite."""
    if len(values) < 2 or not np.all(np.isfinite(values)):
        return float("nan")
    return float(values.std(ddof=1))


def summarise_frame_metric(per_video: Sequence[np.ndarray], config: BootstrapConfig) -> dict:
    """Summary of one frame metric from its per-video arrays of per-frame values."""
    sums = np.array([np.sum(v) for v in per_video], dtype=np.float64)
    counts = np.array([len(v) for v in per_video], dtype=np.float64)
    means = sums / counts
    index = resample_videos(len(per_video), config.samples, config.seed)
    with np.errstate(invalid="ignore"):
        boot_pooled = sums[index].sum(axis=1) / counts[index].sum(axis=1)
        boot_macro = means[index].mean(axis=1)
    return {
        "frame_pooled": {"value": float(sums.sum() / counts.sum()),
                         "ci": percentile_interval(boot_pooled, config.confidence)},
        "video_macro": {"value": float(means.mean()), "ci": percentile_interval(boot_macro, config.confidence)},
        "std_over_videos": _std(means),
        "n_videos": len(per_video),
        "n_frames": int(counts.sum()),
    }


def summarise_video_metric(values: Sequence[float], config: BootstrapConfig) -> dict:
    """Summary of one value per video: mean over defined values, bootstrap over videos."""
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    index = resample_videos(len(values), config.samples, config.seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = np.where(defined[index], values[index], 0.0).sum(axis=1) / defined[index].sum(axis=1)
    return {
        "value": float(values[defined].mean()) if defined.any() else float("nan"),
        "ci": percentile_interval(replicates, config.confidence),
        "std_over_videos": _std(values[defined]),
        "n_videos": len(values),
        "n_defined": int(defined.sum()),
    }


def _stack(rows: Sequence[np.ndarray]) -> np.ndarray:
    kept = [r for r in rows if len(r)]
    return np.concatenate(kept) if kept else np.zeros((0, 0))


def summarise_distribution_metric(pred_rows: Sequence[np.ndarray], gt_rows: Sequence[np.ndarray],
                                  config: BootstrapConfig) -> dict:
    """Fréchet distance between pooled predicted and ground-truth feature rows (lists are
    per video, in the same video order), with a video-level bootstrap interval."""
    value = frechet_distance(_stack(pred_rows), _stack(gt_rows))
    index = resample_videos(len(pred_rows), config.distribution_samples, config.seed)
    replicates = np.full(len(index), np.nan)
    for r, videos in enumerate(index):
        pred = _stack([pred_rows[v] for v in videos])
        gt = _stack([gt_rows[v] for v in videos])
        if len(pred) >= 2 and len(gt) >= 2:
            replicates[r] = frechet_distance(pred, gt)
    return {
        "value": value,
        "ci": percentile_interval(replicates, config.confidence),
        "n_videos": len(pred_rows),
        "n_pred": int(sum(len(r) for r in pred_rows)),
        "n_gt": int(sum(len(r) for r in gt_rows)),
        "bootstrap_replicates_used": int(np.sum(~np.isnan(replicates))),
    }
