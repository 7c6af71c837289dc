"""A fit is reproducible: the same detections give the same parameters, in one process and
in a fresh process with other thread settings (resumable batch jobs rely on it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file
from test_fitting import synthetic_detections

from champ3d.body.anny_body import BODY_JOINTS
from champ3d.detect.mediapipe_person import MASK_LONG_SIDE
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFitter, FitSettings

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"shape_frames": 3, "chunk_size": 4, "shape_iterations": [10, 10], "pose_iterations": [5, 10]}

FIT_IN_FRESH_PROCESS = """
import sys, json, numpy as np, torch
from safetensors.torch import save_file
from champ3d.body.anny_body import AnnyBody
from champ3d.detect.mediapipe_person import PersonDetections
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFitter, FitSettings
arrays = dict(np.load(sys.argv[1]))
detections = PersonDetections.from_arrays(arrays)
detections.found, detections.interpolated = detections.found.astype(bool), detections.interpolated.astype(bool)
settings = json.loads(sys.argv[2])
settings = FitSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
camera = CameraIntrinsics(**json.loads(sys.argv[3]))
fit = BodyFitter(AnnyBody(), settings).fit(detections, camera)
save_file({k: v.contiguous() for k, v in fit.params.to_dict().items()}, sys.argv[4])
"""


def moving_person(body, camera: CameraIntrinsics, frames: int):
    """Detections of a body that raises an arm and steps sideways, with hull-shaped masks."""
    truth = body.zero_params(frames)
    phase = torch.linspace(0, 1, frames)
    truth.body_pose[:, BODY_JOINTS.index("upperarm01.L"), 1] = 0.8 * phase
    truth.body_pose[:, BODY_JOINTS.index("lowerleg01.R"), 0] = 0.5 * phase
    truth.transl[:] = torch.tensor([0.0, 0.05, 40.0])
    truth.transl[:, 0] = 0.2 * phase
    detections = synthetic_detections(body, truth, camera)
    scale = MASK_LONG_SIDE / max(camera.width, camera.height)
    height, width = round(camera.height * scale), round(camera.width * scale)
    with torch.no_grad():
        pixels = camera.project(body(truth).vertices).numpy() * scale
    masks = np.zeros((frames, height, width), np.uint8)
    for mask, points in zip(masks, pixels):
        cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 255)
    detections.masks = masks
    return detections


def settings() -> FitSettings:
    return FitSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in SETTINGS.items()})


def test_same_detections_same_fit(body, tmp_path):
    camera = CameraIntrinsics.centred(384, 512)
    detections = moving_person(body, camera, frames=8)
    first = BodyFitter(body, settings()).fit(detections, camera)
    second = BodyFitter(body, settings()).fit(detections, camera)
    for name, value in first.params.to_dict().items():
        assert torch.equal(value, getattr(second.params, name)), name

    np.savez(tmp_path / "detections.npz", **detections.to_arrays())
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=str(REPO))
    subprocess.run(
        [sys.executable, "-c", FIT_IN_FRESH_PROCESS, str(tmp_path / "detections.npz"), json.dumps(SETTINGS),
         json.dumps(camera.to_dict()), str(tmp_path / "fit.safetensors")],
        check=True, cwd=REPO, env=env, capture_output=True,
    )
    other = load_file(str(tmp_path / "fit.safetensors"))
    for name, value in first.params.to_dict().items():
        difference = (value - other[name]).abs().max().item()
        assert difference <= 1e-6, f"{name} differs by {difference} in a fresh process"
