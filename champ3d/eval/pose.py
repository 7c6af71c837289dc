"""Pose-following and motion-quality measures on fitted keypoint tracks (no network weights).

Conventions (owned here for these metrics):

- A *track* is ``(T, K, 3)`` keypoints of one person over ``T`` consecutive frames, in metres,
  in the camera frame of :mod:`render.cameras` (OpenCV: x right, y down, z forward), as the
  body model returns them (:meth:`champ3d.body.base.BodyModel.keypoints`). Only the
  ``K = 23`` body keypoints of :data:`champ3d.body.keypoints.BODY_KEYPOINT_NAMES` (COCO-17
  plus toes and heels) are used; hands are left out.
- 2D tracks are ``(T, K, 2)`` pixel coordinates of the same keypoints in the predicted frame.
- Results: 3D errors and motion in millimetres, PCK as the fraction of keypoints in [0, 1].

Definitions:

- **MPJPE**: per frame, the mean Euclidean distance between predicted and target keypoints
  after subtracting each one's root (the pelvis: the midpoint of the two hip keypoints).
- **PA-MPJPE**: per frame, MPJPE after the similarity transform (rotation, uniform scale,
  translation; reflections excluded) that best maps the predicted root-relative keypoints
  onto the target's in the least-squares sense (Umeyama 1991).
- **PCK@a**: per frame, the fraction of keypoints whose predicted 2D position lies within
  ``a * h`` pixels of the target's, ``h`` the height of the target keypoints' bounding box.
- **Jitter**: the mean over frames ``1..T-2`` and keypoints of the second difference
  ``|x[t+1] - 2 x[t] + x[t-1]|`` of root-relative keypoints (mm / frame^2). It measures the
  body's articulation only: the root's depth is poorly observed by a single camera (with
  Champ's near-orthographic camera it varies by decimetres per frame), so the absolute
  root motion is left out.
- **Foot skating**: the mean sideways slide of foot keypoints (big toes, small toes, heels)
  between consecutive frames in which the keypoint is in contact with the ground, in mm per
  frame. Up is the camera's -y axis (an upright static camera). The ground level is the
  median over frames of the lowest foot keypoint's height; a keypoint is in contact when it is
  at most :data:`CONTACT_HEIGHT_M` (5 cm) above that level, a common threshold in the
  motion-synthesis literature. The slide is the displacement along the camera's x axis: the
  depth axis is left out for the reason given for jitter. NaN when no keypoint is in contact
  in two consecutive frames.
"""
from __future__ import annotations

import numpy as np

from champ3d.body.keypoints import BODY_KEYPOINT_NAMES, keypoint_index

NUM_BODY_KEYPOINTS = len(BODY_KEYPOINT_NAMES)
PELVIS = (keypoint_index("left_hip"), keypoint_index("right_hip"))
FOOT_KEYPOINTS = tuple(keypoint_index(f"{side}_{part}") for side in ("left", "right")
                       for part in ("big_toe", "small_toe", "heel"))
CONTACT_HEIGHT_M = 0.05
MM = 1000.0


def _track(points: np.ndarray, dims: int, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[1] != NUM_BODY_KEYPOINTS or points.shape[2] != dims:
        raise ValueError(f"{name}: expected (T, {NUM_BODY_KEYPOINTS}, {dims}) body keypoints, got {points.shape}")
    return points


def _pair(pred: np.ndarray, target: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    pred, target = _track(pred, dims, "prediction"), _track(target, dims, "target")
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target tracks differ in shape: {pred.shape} vs {target.shape}")
    return pred, target


def root_relative(track: np.ndarray) -> np.ndarray:
    """Keypoints minus the pelvis (mid-hip) of the same frame."""
    return track - track[:, list(PELVIS)].mean(axis=1, keepdims=True)


def mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(T,)`` root-relative mean per-joint position error in mm."""
    pred, target = _pair(pred, target, 3)
    return MM * np.linalg.norm(root_relative(pred) - root_relative(target), axis=-1).mean(axis=1)


def procrustes_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per frame, ``source`` ``(T, K, 3)`` mapped by the similarity transform (rotation without
    reflection, uniform scale, translation) that minimises its squared distance to ``target``."""
    mu_s, mu_t = source.mean(axis=1, keepdims=True), target.mean(axis=1, keepdims=True)
    s, t = source - mu_s, target - mu_t
    cross = np.einsum("tki,tkj->tij", t, s)  # sum_k t_k s_k^T
    u, sigma, vt = np.linalg.svd(cross)
    sign = np.sign(np.linalg.det(u @ vt))
    correction = np.ones_like(sigma)
    correction[:, -1] = sign
    rotation = (u * correction[:, None, :]) @ vt  # maps source directions onto target directions
    variance = np.einsum("tki,tki->t", s, s)
    scale = np.einsum("ti,ti->t", sigma, correction) / np.maximum(variance, 1e-12)
    return scale[:, None, None] * np.einsum("tij,tkj->tki", rotation, s) + mu_t


def pa_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(T,)`` MPJPE after per-frame Procrustes alignment, mm."""
    pred, target = _pair(pred, target, 3)
    aligned = procrustes_align(root_relative(pred), root_relative(target))
    return MM * np.linalg.norm(aligned - root_relative(target), axis=-1).mean(axis=1)


def pck(pred_2d: np.ndarray, target_2d: np.ndarray, alpha: float) -> np.ndarray:
    """``(T,)`` fraction of keypoints within ``alpha`` times the target's bounding-box height."""
    pred_2d, target_2d = _pair(pred_2d, target_2d, 2)
    height = target_2d[..., 1].max(axis=1) - target_2d[..., 1].min(axis=1)
    distance = np.linalg.norm(pred_2d - target_2d, axis=-1)
    return (distance <= alpha * height[:, None]).mean(axis=1)


def jitter(track: np.ndarray) -> float:
    """Mean acceleration magnitude of the root-relative keypoints, mm / frame^2 (NaN below 3 frames)."""
    track = root_relative(_track(track, 3, "track"))
    if len(track) < 3:
        return float("nan")
    acceleration = track[2:] - 2.0 * track[1:-1] + track[:-2]
    return float(MM * np.linalg.norm(acceleration, axis=-1).mean())


def foot_contacts(track: np.ndarray) -> np.ndarray:
    """``(T, 6)`` bool: each foot keypoint within :data:`CONTACT_HEIGHT_M` of the ground level."""
    feet_down = _track(track, 3, "track")[:, list(FOOT_KEYPOINTS), 1]  # camera y points down
    ground = np.median(feet_down.max(axis=1))
    return ground - feet_down <= CONTACT_HEIGHT_M


def foot_skating(track: np.ndarray) -> float:
    """Mean sideways slide of foot keypoints in contact at both ends of a frame step, mm / frame."""
    track = _track(track, 3, "track")
    contact = foot_contacts(track)
    both = contact[1:] & contact[:-1]
    if not both.any():
        return float("nan")
    slide = np.abs(np.diff(track[:, list(FOOT_KEYPOINTS), 0], axis=0))
    return float(MM * slide[both].mean())
