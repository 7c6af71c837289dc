"""SMPLify-style fitting of a body model to MediaPipe landmarks, batched over a clip.

Energy per frame (weights in :class:`FitSettings`):

* ``pose_3d``: visibility-weighted squared distance between hip-centred model keypoints
  and MediaPipe's metric world landmarks (the relative 3D pose and the facing);
* ``pose_2d``: a Geman-McClure-robust reprojection error, in units of the person's
  bounding-box height;
* ``hand_2d`` / ``hand_3d``: the same for the 21 landmarks of each hand seen by
  MediaPipe Hands (finger articulation), weighted by the hand's score;
* priors that need no licensed data: L2 on joint and finger rotations, the knee as a
  one-way hinge, L2 on the shape's deviation from the average adult;
* ``smooth``: squared keypoint and root acceleration between consecutive frames.

One shape per clip: it is fitted first on up to ``shape_frames`` frames spread over the
clip, then frozen while the clip's poses are fitted in chunks of ``chunk_size`` frames
(memory stays flat with clip length), each chunk warm-started from the previous one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import roma
import torch

from champ3d.body.anny_body import BODY_JOINTS
from champ3d.body.base import BodyModel, BodyParams
from champ3d.body.keypoints import hand_slice, keypoint_index
from champ3d.detect.mediapipe_person import POSE_HIPS, POSE_SHOULDERS, POSE_TO_KEYPOINT, PersonDetections
from champ3d.fitting.camera import CameraIntrinsics


@dataclass
class FitSettings:
    shape_frames: int = 12
    chunk_size: int = 64
    shape_iterations: tuple[int, int] = (60, 90)  # (3D-only, full) Adam steps for the shape pass
    pose_iterations: tuple[int, int] = (30, 50)  # (3D-only, full) Adam steps per chunk
    learning_rate: float = 0.04
    weights: dict = field(default_factory=lambda: {
        "pose_3d": 1.0, "pose_2d": 4.0, "hand_2d": 1.0, "hand_3d": 0.5,
        "body_prior": 2e-4, "hand_prior": 1e-4, "knee": 1e-2, "shape_prior": 1e-3, "smooth": 40.0,
    })
    robust_sigma: float = 0.05  # GMoF scale, in bounding-box heights
    min_hand_score: float = 0.5

    @classmethod
    def for_image(cls) -> "FitSettings":
        """A single photo: no temporal evidence, so more steps for the one frame."""
        return cls(shape_frames=1, shape_iterations=(100, 150))


@dataclass
class BodyFit:
    """A fitted clip: per-frame body parameters with one shared shape, and its camera."""

    params: BodyParams
    camera: CameraIntrinsics
    interpolated: np.ndarray  # (T,) bool: frames where the person was lost
    error_2d: np.ndarray  # (T,) median 2D keypoint error / bounding-box height
    backend: str

    @property
    def num_frames(self) -> int:
        return self.params.batch_size


_POSE_IDS = list(POSE_TO_KEYPOINT)
_MODEL_IDS = [keypoint_index(name) for name in POSE_TO_KEYPOINT.values()]
_MODEL_HIPS = [keypoint_index("left_hip"), keypoint_index("right_hip")]
_KNEES = [BODY_JOINTS.index("lowerleg01.L"), BODY_JOINTS.index("lowerleg01.R")]


class _Targets:
    """Torch views of the detections for a set of frames."""

    def __init__(self, det: PersonDetections, frames: np.ndarray, min_hand_score: float):
        f = lambda a: torch.from_numpy(np.ascontiguousarray(a[frames])).float()
        self.x2d = f(det.pose_2d)[:, _POSE_IDS]
        self.vis = f(det.pose_visibility)[:, _POSE_IDS]
        world = f(det.pose_world)
        self.x3d = (world - world[:, list(POSE_HIPS)].mean(1, keepdim=True))[:, _POSE_IDS]
        self.world = world
        lo, hi = self.x2d.min(1).values, self.x2d.max(1).values
        self.scale = (hi - lo).max(dim=1).values.clamp(min=16.0)  # (T,) bounding-box height, px
        self.hand2d = f(det.hand_2d)
        self.hand3d = f(det.hand_world) - f(det.hand_world)[:, :, :1]
        score = f(det.hand_score)
        self.hand_w = torch.where(score >= min_hand_score, score, torch.zeros_like(score))


def initial_orientation(world: torch.Tensor) -> torch.Tensor:
    """(T, 33, 3) world landmarks -> (T, 3) axis-angle facing from the hip/shoulder frame."""
    left = (world[:, POSE_HIPS[0]] - world[:, POSE_HIPS[1]]) + (
        world[:, POSE_SHOULDERS[0]] - world[:, POSE_SHOULDERS[1]]
    )
    down = world[:, list(POSE_HIPS)].mean(1) - world[:, list(POSE_SHOULDERS)].mean(1)
    y = torch.nn.functional.normalize(down, dim=-1)
    x = torch.nn.functional.normalize(left - (left * y).sum(-1, keepdim=True) * y, dim=-1)
    z = torch.cross(x, y, dim=-1)
    return roma.rotmat_to_rotvec(torch.stack((x, y, z), dim=-1))


def _gmof(residual_sq: torch.Tensor, sigma: float) -> torch.Tensor:
    return sigma**2 * residual_sq / (sigma**2 + residual_sq)


class BodyFitter:
    def __init__(self, body: BodyModel, settings: FitSettings | None = None):
        self.body = body
        self.settings = settings or FitSettings()

    # -- public ------------------------------------------------------------------------
    def fit(self, det: PersonDetections, camera: CameraIntrinsics, progress=None) -> BodyFit:
        if not det.found.any():
            raise ValueError("no person was found in any frame")
        s = self.settings
        T = det.num_frames
        shape_ids = np.unique(np.linspace(0, T - 1, min(T, s.shape_frames)).round().astype(int))
        shape_ids = shape_ids[det.found[shape_ids]] if det.found[shape_ids].any() else shape_ids
        shape_fit = self._fit_frames(det, camera, shape_ids, s.shape_iterations, fit_shape=True)
        shape = shape_fit.shape.detach()
        if len(shape_ids) == T:  # the shape pass already fitted every frame
            return self._result(shape_fit.detach(), det, camera)

        chunks = [np.arange(a, min(a + s.chunk_size, T)) for a in range(0, T, s.chunk_size)]
        results, previous = [], None
        for frames in (progress(chunks) if progress else chunks):
            params = self._fit_frames(det, camera, frames, s.pose_iterations, shape=shape, warm=previous)
            results.append(params.detach())
            previous = params.select(slice(-1, None)).detach()
        params = BodyParams(
            shape=shape,
            global_orient=torch.cat([p.global_orient for p in results]),
            body_pose=torch.cat([p.body_pose for p in results]),
            hand_pose=torch.cat([p.hand_pose for p in results]),
            transl=torch.cat([p.transl for p in results]),
        )
        return self._result(params, det, camera)

    def _result(self, params: BodyParams, det: PersonDetections, camera: CameraIntrinsics) -> BodyFit:
        with torch.no_grad():
            err = self.keypoint_error_2d(params, det, camera)
        return BodyFit(params, camera, det.interpolated.copy(), err, self.body.backend)

    def keypoint_error_2d(self, params: BodyParams, det: PersonDetections, camera: CameraIntrinsics) -> np.ndarray:
        """Per frame: median distance of visible projected keypoints to MediaPipe's, / box height."""
        targets = _Targets(det, np.arange(det.num_frames), self.settings.min_hand_score)
        errors = []
        for a in range(0, params.batch_size, self.settings.chunk_size):
            sl = slice(a, a + self.settings.chunk_size)
            kp = self.body.keypoints(params.select(sl))[:, _MODEL_IDS]
            dist = (camera.project(kp) - targets.x2d[sl]).norm(dim=-1) / targets.scale[sl, None]
            dist = torch.where(targets.vis[sl] > 0.5, dist, torch.full_like(dist, float("nan")))
            errors.append(torch.nanmedian(dist, dim=1).values)
        return torch.cat(errors).numpy()

    # -- optimisation ------------------------------------------------------------------
    def _fit_frames(self, det, camera, frames, iterations, fit_shape=False, shape=None, warm=None) -> BodyParams:
        s = self.settings
        tg = _Targets(det, frames, s.min_hand_score)
        n = len(frames)
        body = self.body
        shape0 = body.default_shape()[None] if shape is None else shape
        shape_logit = torch.logit(shape0.clamp(1e-3, 1 - 1e-3)).clone().requires_grad_(fit_shape)
        orient = initial_orientation(tg.world).requires_grad_(True)
        body_pose = torch.zeros(n, body.num_body_joints, 3)
        hand_pose = torch.zeros(n, body.num_hand_joints, 3)
        if warm is not None:
            body_pose[:] = warm.body_pose
            hand_pose[:] = warm.hand_pose
        body_pose.requires_grad_(True)
        hand_pose.requires_grad_(True)

        def params_with(transl):
            return BodyParams(torch.sigmoid(shape_logit), orient, body_pose, hand_pose, transl)

        # stage 1: relative 3D pose, facing and shape (translation-free terms only)
        zero_t = torch.zeros(n, 3)
        rot_vars = [orient, body_pose, hand_pose] + ([shape_logit] if fit_shape else [])
        opt = torch.optim.Adam(rot_vars, lr=s.learning_rate)
        for _ in range(iterations[0]):
            opt.zero_grad()
            loss = self._loss(params_with(zero_t), tg, camera, use_2d=False, fit_shape=fit_shape)
            loss.backward()
            opt.step()

        # closed-form root position, then everything jointly
        with torch.no_grad():
            kp = body.keypoints(params_with(zero_t))
            transl0 = _solve_translation(kp[:, _MODEL_IDS], tg.x2d, tg.vis, camera)
        uv = ((transl0[:, :2] / transl0[:, 2:]) * torch.tensor([camera.fx, camera.fy]) / camera.height).clone()
        log_z = transl0[:, 2:].log().clone()
        uv.requires_grad_(True)
        log_z.requires_grad_(True)

        def transl_now():
            z = log_z.exp()
            xy = uv * camera.height / torch.tensor([camera.fx, camera.fy]) * z
            return torch.cat((xy, z), dim=1)

        opt = torch.optim.Adam(rot_vars + [uv, log_z], lr=s.learning_rate * 0.5)
        for _ in range(iterations[1]):
            opt.zero_grad()
            loss = self._loss(params_with(transl_now()), tg, camera, use_2d=True, fit_shape=fit_shape)
            loss.backward()
            opt.step()
        return params_with(transl_now()).detach()

    def _loss(self, params: BodyParams, tg: _Targets, camera: CameraIntrinsics, use_2d: bool, fit_shape: bool):
        w = self.settings.weights
        sigma = self.settings.robust_sigma
        kp = self.body.keypoints(params)
        body_kp = kp[:, _MODEL_IDS]
        rel = body_kp - kp[:, _MODEL_HIPS].mean(1, keepdim=True)
        vis_sum = tg.vis.sum().clamp(min=1.0)
        loss = w["pose_3d"] * (tg.vis * ((rel - tg.x3d) ** 2).sum(-1)).sum() / vis_sum * 100.0

        for side, name in enumerate(("left", "right")):
            hand = kp[:, hand_slice(name)]
            weight = tg.hand_w[:, side, None]
            if weight.sum() == 0:
                continue
            rel_hand = hand - hand[:, :1]
            loss = loss + w["hand_3d"] * (weight * ((rel_hand - tg.hand3d[:, side]) ** 2).sum(-1)).sum() / vis_sum * 100.0
            if use_2d:
                res = ((camera.project(hand) - tg.hand2d[:, side]) / tg.scale[:, None, None]).pow(2).sum(-1)
                loss = loss + w["hand_2d"] * (weight * _gmof(res, sigma)).sum() / vis_sum * 100.0

        if use_2d:
            res = ((camera.project(body_kp) - tg.x2d) / tg.scale[:, None, None]).pow(2).sum(-1)
            loss = loss + w["pose_2d"] * (tg.vis * _gmof(res, sigma)).sum() / vis_sum * 100.0
            if params.batch_size > 2:
                accel = params.transl[2:] - 2 * params.transl[1:-1] + params.transl[:-2]
                depth = params.transl[:, 2:].mean().detach()
                loss = loss + w["smooth"] * (accel / depth).pow(2).sum() / params.batch_size * 100.0

        if params.batch_size > 2:
            accel = rel[2:] - 2 * rel[1:-1] + rel[:-2]
            loss = loss + w["smooth"] * accel.pow(2).sum(-1).mean()

        n = params.batch_size
        loss = loss + w["body_prior"] * params.body_pose.pow(2).sum() / n
        loss = loss + w["hand_prior"] * params.hand_pose.pow(2).sum() / n
        knee = params.body_pose[:, _KNEES]  # flexion is +x in Anny's world-aligned axes
        loss = loss + w["knee"] * (knee[..., 1:].pow(2).sum() + torch.relu(-knee[..., 0]).pow(2).sum()) / n
        if fit_shape:
            deviation = (params.shape - self.body.default_shape()[None]) * self.body.shape_prior_scale()
            loss = loss + w["shape_prior"] * deviation.pow(2).sum()
        return loss


def _solve_translation(kp: torch.Tensor, x2d: torch.Tensor, vis: torch.Tensor, camera: CameraIntrinsics) -> torch.Tensor:
    """Per frame, the root translation t minimising the weighted reprojection error of
    ``kp + t`` (linearised pinhole: f·(X + t_x) = (u − c_x)·(Z + t_z), same for y)."""
    T, K, _ = kp.shape
    du = x2d[..., 0] - camera.cx
    dv = x2d[..., 1] - camera.cy
    zeros = torch.zeros_like(du)
    rows_u = torch.stack((torch.full_like(du, camera.fx), zeros, -du), dim=-1)
    rows_v = torch.stack((zeros, torch.full_like(dv, camera.fy), -dv), dim=-1)
    A = torch.cat((rows_u, rows_v), dim=1)  # (T, 2K, 3)
    b = torch.cat((du * kp[..., 2] - camera.fx * kp[..., 0], dv * kp[..., 2] - camera.fy * kp[..., 1]), dim=1)
    wt = torch.cat((vis, vis), dim=1).sqrt()[..., None]
    solution = torch.linalg.lstsq(A * wt, (b[..., None] * wt)).solution[..., 0]
    solution[:, 2] = solution[:, 2].clamp(min=0.5)
    return solution
