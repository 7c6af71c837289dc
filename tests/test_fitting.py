"""Fit round trip: landmarks made from a body posed with known parameters are fitted back."""
from __future__ import annotations

import numpy as np
import torch

from champ3d.body.keypoints import hand_slice
from champ3d.detect.mediapipe_person import (
    MASK_LONG_SIDE, NUM_POSE_LANDMARKS, POSE_TO_KEYPOINT, PersonDetections,
)
from champ3d.body.keypoints import keypoint_index
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFitter, FitSettings


def synthetic_detections(body, params, camera: CameraIntrinsics) -> PersonDetections:
    """What a perfect landmark detector would report for the posed ``params``."""
    with torch.no_grad():
        kp = body.keypoints(params)
    T = params.batch_size
    pose_2d = np.zeros((T, NUM_POSE_LANDMARKS, 2), np.float32)
    pose_world = np.zeros((T, NUM_POSE_LANDMARKS, 3), np.float32)
    vis = np.zeros((T, NUM_POSE_LANDMARKS), np.float32)
    pix = camera.project(kp).numpy()
    hips = kp[:, [keypoint_index("left_hip"), keypoint_index("right_hip")]].mean(1, keepdim=True)
    world = (kp - hips).numpy()
    for mp_id, name in POSE_TO_KEYPOINT.items():
        pose_2d[:, mp_id] = pix[:, keypoint_index(name)]
        pose_world[:, mp_id] = world[:, keypoint_index(name)]
        vis[:, mp_id] = 1.0
    hand_2d = np.stack([pix[:, hand_slice(s)] for s in ("left", "right")], axis=1)
    hand_world = np.stack([kp[:, hand_slice(s)].numpy() for s in ("left", "right")], axis=1)
    h = MASK_LONG_SIDE
    return PersonDetections(
        image_size=np.array([camera.height, camera.width]),
        pose_2d=pose_2d, pose_visibility=vis, pose_world=pose_world,
        hand_2d=hand_2d.astype(np.float32), hand_world=hand_world.astype(np.float32),
        hand_score=np.ones((T, 2), np.float32),
        masks=np.zeros((T, h, h), np.uint8), found=np.ones(T, bool), interpolated=np.zeros(T, bool),
    )


def test_fit_recovers_known_pose(body):
    torch.manual_seed(0)
    T = 6
    camera = CameraIntrinsics.centred(384, 512)
    truth = body.zero_params(T)
    truth.shape = body.default_shape()[None] + torch.tensor([[0.2, 0.0, 0.1, -0.1, 0.0, 0.1]])
    # a smooth arm-and-leg motion, turning slightly, moving sideways
    phase = torch.linspace(0, 1, T)[:, None]
    from champ3d.body.anny_body import BODY_JOINTS
    for joint, axis, amplitude in (("upperarm01.L", 1, 0.8), ("upperarm01.R", 1, -0.6),
                                    ("lowerarm01.L", 2, 0.9), ("lowerleg01.R", 0, 0.7),
                                    ("upperleg01.R", 0, -0.5), ("spine03", 2, 0.2)):
        truth.body_pose[:, BODY_JOINTS.index(joint), axis] = amplitude * phase[:, 0]
    truth.hand_pose[:, 3:9, 0] = 0.6 * phase
    truth.global_orient[:, 1] = 0.4 * phase[:, 0]
    truth.transl[:] = torch.tensor([0.0, 0.05, 40.0])
    truth.transl[:, 0] = 0.3 * phase[:, 0]

    detections = synthetic_detections(body, truth, camera)
    fit = BodyFitter(body, FitSettings(shape_frames=T)).fit(detections, camera)

    with torch.no_grad():
        true_kp = body.keypoints(truth)
        fit_kp = body.keypoints(fit.params)
    body_ids = slice(0, 23)
    rel = lambda k: k[:, body_ids] - k[:, [11, 12]].mean(1, keepdim=True)
    mpjpe = (rel(true_kp) - rel(fit_kp)).norm(dim=-1).mean().item()
    # stated accuracy: hip-centred body joints within 25 mm, 2D within 1 % of the box height
    assert mpjpe < 0.025, f"mean joint error {mpjpe * 1000:.1f} mm"
    assert np.median(fit.error_2d) < 0.01
    hands = lambda k: torch.cat([k[:, hand_slice(s)] - k[:, hand_slice(s)][:, :1] for s in ("left", "right")], 1)
    hand_error = (hands(true_kp) - hands(fit_kp)).norm(dim=-1).mean().item()
    assert hand_error < 0.01, f"finger joint error {hand_error * 1000:.1f} mm"
