"""Raw footage -> guidance on the real clips (skipped without the footage folder).

The full-length numbers quoted in the README come from ``scripts/check_guidance.py``;
here a prefix of each clip keeps the suite fast while checking the same thresholds.
"""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from champ3d.guidance import GUIDANCE_TYPES

FRAMES = 24


@pytest.fixture(scope="module")
def dance_guidance(real_fixtures, tmp_path_factory):
    out = tmp_path_factory.mktemp("guidance") / "dance"
    result = subprocess.run(
        [sys.executable, "-m", "champ3d.cli", "guidance",
         "--ref", str(real_fixtures / "images" / "deepfashion_00004955.jpg"),
         "--driving", str(real_fixtures / "video" / "dance_unianimate_source.mp4"),
         "--out", str(out), "--size", "512", "--max-frames", str(FRAMES)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_layout_is_complete(dance_guidance):
    for kind in GUIDANCE_TYPES:
        names = sorted(p.name for p in (dance_guidance / kind).glob("*.png"))
        assert names == [f"{i:04d}.png" for i in range(FRAMES)], kind
    for name in ("ref.png", "qc.mp4", "contact_sheet.png", "qc.json", "fits/aligned.json", "fits/driving.safetensors"):
        assert (dance_guidance / name).is_file(), name
    assert not list(dance_guidance.parent.glob("*.partial-*"))


def test_encodings_on_real_output(dance_guidance):
    from render.palette import SEMANTIC_PALETTE

    semantic = cv2.cvtColor(cv2.imread(str(dance_guidance / "semantic_map" / "0005.png")), cv2.COLOR_BGR2RGB)
    mask = cv2.imread(str(dance_guidance / "mask" / "0005.png"), cv2.IMREAD_GRAYSCALE)
    depth = cv2.imread(str(dance_guidance / "depth" / "0005.png"), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(mask)) == {0, 255}
    colours = {tuple(c) for c in semantic[mask > 0]}
    assert colours <= {tuple(c) for c in SEMANTIC_PALETTE}, "semantic pixels must be exact palette colours"
    assert (semantic[mask == 0] == 0).all() and (depth[mask == 0] == 0).all()
    assert depth[mask > 0].max() == 255  # nearest body point is white


def test_quality_thresholds(dance_guidance):
    qc = json.loads((dance_guidance / "qc.json").read_text())
    assert qc["driving_mask_iou"]["median"] >= 0.75
    assert qc["driving_keypoint_error"]["median"] <= 0.04
    # frame 0 overlaps the reference person (target 0.7; 0.71 measured on this pair: the body
    # stays inside the clothed silhouette, and the driver's frame-0 arms and stance differ
    # from the photo's)
    assert qc["reference_mask_iou"] >= 0.7
    assert qc["frames"] == {kind: FRAMES for kind in GUIDANCE_TYPES}
