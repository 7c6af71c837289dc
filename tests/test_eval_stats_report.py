"""Aggregation, bootstrap intervals and the report writers."""
from __future__ import annotations

import csv
import json
import math
import os
import warnings

import numpy as np
import pytest

from champ3d.eval.report import atomic_write_text, latex_table, markdown_table, write_csv, write_json
from champ3d.eval.stats import (BootstrapConfig, percentile_interval, resample_videos,
                                summarise_distribution_metric, summarise_frame_metric, summarise_video_metric)


def _videos(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(loc, 1.0, size=n) for loc, n in ((10.0, 30), (12.0, 10), (11.0, 50), (9.0, 20))]


def test_frame_aggregates():
    videos = _videos()
    summary = summarise_frame_metric(videos, BootstrapConfig(samples=200, seed=0))
    assert summary["frame_pooled"]["value"] == pytest.approx(np.concatenate(videos).mean(), rel=1e-12)
    assert summary["video_macro"]["value"] == pytest.approx(np.mean([v.mean() for v in videos]), rel=1e-12)
    assert summary["std_over_videos"] == pytest.approx(np.std([v.mean() for v in videos], ddof=1), rel=1e-12)
    assert (summary["n_videos"], summary["n_frames"]) == (4, 110)
    for key in ("frame_pooled", "video_macro"):
        low, high = summary[key]["ci"]
        assert low <= summary[key]["value"] <= high and high - low > 0.1


def test_bootstrap_is_deterministic_per_seed():
    rng = np.random.default_rng(4)
    videos = [rng.normal(rng.uniform(5, 15), 1.0, size=rng.integers(5, 40)) for _ in range(12)]
    first = summarise_frame_metric(videos, BootstrapConfig(samples=300, seed=5))
    again = summarise_frame_metric(videos, BootstrapConfig(samples=300, seed=5))
    other = summarise_frame_metric(videos, BootstrapConfig(samples=300, seed=6))
    assert first == again
    assert first["frame_pooled"]["ci"] != other["frame_pooled"]["ci"]
    np.testing.assert_array_equal(resample_videos(4, 10, 1), resample_videos(4, 10, 1))


def test_bootstrap_by_hand():
    """Percentile interval of pooled means over videos resampled with default_rng(seed)."""
    videos = _videos(1)
    config = BootstrapConfig(samples=50, seed=3, confidence=0.9)
    rng = np.random.default_rng(3)
    replicates = []
    for _ in range(50):
        picked = rng.integers(0, len(videos), size=len(videos))
        replicates.append(np.concatenate([videos[i] for i in picked]).mean())
    expected = np.percentile(replicates, [5, 95])
    np.testing.assert_allclose(summarise_frame_metric(videos, config)["frame_pooled"]["ci"], expected, rtol=1e-12)


def test_video_metric_summary_skips_undefined_videos():
    """One value per video (jitter, foot skating); NaN (no foot contact) is left out of the mean
    and of every bootstrap replicate."""
    values = [4.0, float("nan"), 6.0, 8.0]
    config = BootstrapConfig(samples=300, seed=2, confidence=0.9)
    summary = summarise_video_metric(values, config)
    assert summary["value"] == 6.0 and (summary["n_videos"], summary["n_defined"]) == (4, 3)
    assert summary["std_over_videos"] == pytest.approx(2.0)
    rng = np.random.default_rng(2)
    with warnings.catch_warnings():  # a replicate drawing only the undefined video is NaN, and dropped
        warnings.simplefilter("ignore", RuntimeWarning)
        replicates = [np.nanmean(np.array(values)[rng.integers(0, 4, size=4)]) for _ in range(300)]
    expected = percentile_interval(np.array(replicates), 0.9)
    assert summary["ci"] == pytest.approx(expected, rel=1e-12)


def test_percentile_interval_ignores_nan():
    assert percentile_interval(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5) == [1.5, 2.5]
    assert all(math.isnan(v) for v in percentile_interval(np.array([np.nan]), 0.9))


def test_distribution_summary():
    rng = np.random.default_rng(0)
    pred = [rng.normal(size=(n, 6)) for n in (20, 25, 30)]
    gt = [rng.normal(size=(n, 6)) + 1.0 for n in (20, 25, 30)]
    config = BootstrapConfig(distribution_samples=40, seed=1)
    summary = summarise_distribution_metric(pred, gt, config)
    assert summary == summarise_distribution_metric(pred, gt, config)
    assert (summary["n_pred"], summary["n_gt"], summary["bootstrap_replicates_used"]) == (75, 75, 40)
    assert summary["ci"][0] <= summary["value"] <= summary["ci"][1]
    same = summarise_distribution_metric(pred, pred, config)
    assert abs(same["value"]) < 1e-9 and max(abs(v) for v in same["ci"]) < 1e-9


def _summary():
    return {
        "protocol": "tiktok_self", "profile": "legacy", "split": "test", "method": "champ_3d", "n_videos": 2,
        "n_frames": 40, "bootstrap": {"samples": 1000, "distribution_samples": 100, "confidence": 0.95, "seed": 0},
        "provenance": {"versions": {"numpy": "1.26.4"}, "weights_sha256": {"vgg.pth": "ab" * 32}},
        "metrics": {
            "L1_disco": {"label": "L1 (DisCo)", "kind": "frame", "higher_is_better": False, "table_format": ".2E",
                         "frame_pooled": {"value": 3.0214e-4, "ci": [2.9e-4, 3.1e-4]}},
            "PSNR": {"label": "PSNR", "kind": "frame", "higher_is_better": True, "table_format": ".2f",
                     "frame_pooled": {"value": math.inf, "ci": [math.inf, math.inf]}},
            "FVD_i3d_disco": {"label": "FVD (I3D, DisCo)", "kind": "distribution", "higher_is_better": False,
                              "table_format": ".2f", "value": 170.2049, "ci": [150.0, 190.5]},
        },
    }


def test_tables():
    md = markdown_table(_summary())
    assert "| Method | L1 (DisCo) ↓ | PSNR ↑ | FVD (I3D, DisCo) ↓ |" in md
    assert "| champ_3d | 3.02E-04 | ∞ | 170.20 |" in md
    assert "[150.00, 190.50]" in md and "tiktok_self" in md and "vgg.pth abababababab" in md
    tex = latex_table(_summary())
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert r"champ\_3d & 3.02E-04 & $\infty$ & 170.20 \\" in tex
    assert r"FVD (I3D, DisCo) $\downarrow$" in tex and r"95\%" in tex


def test_tables_with_several_methods_and_unavailable_metrics():
    first = _summary()
    second = {**_summary(), "method": "baseline", "columns": ["L1_disco", "PSNR", "FVD_i3d_disco"],
              "unavailable": {"FVD_i3d_disco": {**first["metrics"]["FVD_i3d_disco"],
                                                "reason": "needs i3d_pretrained_400.pt"}}}
    del second["metrics"]["FVD_i3d_disco"]
    md = markdown_table(first, second)
    assert md.index("| champ_3d | 3.02E-04 | ∞ | 170.20 |") < md.index("| baseline | 3.02E-04 | ∞ | "
                                                                        "needs i3d_pretrained_400.pt |")
    assert md.count("| 95% CI |") == 2 and "champ_3d: 2 videos, 40 frames; baseline: 2 videos" in md
    tex = latex_table(first, second)
    assert r"baseline & 3.02E-04 & $\infty$ & needs i3d\_pretrained\_400.pt \\" in tex
    video = {**first["metrics"]["FVD_i3d_disco"], "kind": "video", "label": "Jitter (mm/f²)", "value": 3.5,
             "ci": [3.0, 4.0]}
    third = {**_summary(), "method": "video", "metrics": {"jitter": video}}
    assert "| video | 3.50 |" in markdown_table(third) and r"Jitter (mm/f$^2$)" in latex_table(third)


def test_csv_and_json_round_trip(tmp_path):
    rows = [{"video_id": "a", "value": 0.1 + 0.2, "other": math.inf}, {"video_id": "b", "value": 1e-300, "other": -2.5}]
    path = write_csv(tmp_path / "t.csv", ["video_id", "value", "other"], rows)
    with open(path, newline="") as handle:
        back = list(csv.DictReader(handle))
    assert [(r["video_id"], float(r["value"]), float(r["other"])) for r in back] == \
        [(r["video_id"], r["value"], r["other"]) for r in rows]
    data = {"x": 0.1 + 0.2, "inf": math.inf, "nested": {"list": [1, 2.5e-7]}}
    with open(write_json(tmp_path / "t.json", data)) as handle:
        assert json.load(handle) == data
    assert sorted(os.listdir(tmp_path)) == ["t.csv", "t.json"]  # no temporary left behind


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_text(target, "old\n")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    blocker = tmp_path / "is_a_dir"
    blocker.mkdir()
    with pytest.raises(OSError):
        atomic_write_text(blocker, "text")  # the rename onto a directory fails ...
    assert blocker.is_dir() and sorted(os.listdir(tmp_path)) == ["is_a_dir", "out.json"]  # ... and cleans up
