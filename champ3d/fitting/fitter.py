"""SMPLify-style fitting of a body model to MediaPipe landmarks, batched over a clip.

Energy per frame (weights in :class:`FitSettings`):

* ``pose_3d``: visibility-weighted squared distance between hip-centred model keypoints
  and MediaPipe's metric world landmarks (the relative 3D pose and the facing);
* ``pose_2d``: a Geman-McClure-robust reprojection error, in units of the person's
  bounding-box height;
* ``hand_2d`` / ``hand_3d``: the same for the 21 landmarks of each hand seen by
  MediaPipe Hands (finger articulation), weighted by the hand's score;
* ``silhouette_inside`` / ``silhouette_cover``: the body's surface points must project
  inside MediaPipe's person segmentation (a distance-transform penalty), and the
  segmentation's outline must have a surface point nearby (a robust chamfer term), both
  in bounding-box heights; see :class:`_Silhouettes`. ``inside`` weighs more than
  ``cover``: clothes and hair make the segmentation larger than the body, never smaller,
  so the body must stay inside it but need not fill it (a strong cover term spreads the
  legs under a dress). :meth:`FitSettings.tight` weighs ``inside`` far more still, for
  fits whose only use is baking texture: the body then strays onto the background by a
  few pixels at most, which the bake's mask erosion absorbs (:mod:`texture.bake`), so
  fewer texels are lost at its rim; motion fits keep the default balance, whose joints
  are steadier (self-reenactment MPJPE 33.6 mm and jitter 10.5 mm/f² with it, 43.1 mm
  and 15.1 mm/f² with the tight one);
* priors that need no licensed data: L2 on joint and finger rotations, the knee as a
  one-way hinge (Anny's joint axes), L2 on the shape's deviation from the average adult;
* ``depth_tilt``: the squared sine of the angle between the image plane and the torso,
  thighs and shins. MediaPipe's depth leans a person who faces the camera forward and
  bends the knees towards it: on the UBC turn clip the frames facing the camera have the
  torso 10° and the shins 23° forward, where the profile frames (which see that plane)
  show -2° and 13°; photos get it worse (torso 9-19°, shins 19-23° forward on the three
  test photos). :meth:`FitSettings.upright` turns it on, at a weight that leaves a real
  lean most of its angle, for orbit renders, which show a photo's body from the side in
  its own pose (torso 5-9°, shins 4-5° on those photos; median 2D error 0.0089 → 0.0076
  and 0.0103 → 0.0085 on the DeepFashion photos, 0.0139 → 0.0155 on musepose_ref, seen
  from below). Elsewhere it stays off: a reference fitted upright but driven by video
  fits that lean loses 1.1 dB of self-reenactment PSNR* (its straightened legs get a
  shorter build), and with it on for both fits a video's real depth motion would be
  damped for no measured gain (PSNR* 19.67 → 19.65 dB);
* ``smooth``: squared keypoint and root acceleration between consecutive frames.

One shape per clip: it is fitted first on up to ``shape_frames`` frames spread over the
clip, then frozen while the clip's poses are fitted in chunks of ``chunk_size`` frames
(memory stays flat with clip length). Every chunk frame starts from the pose of the
nearest shape-pass frame, and each chunk is warm-started from the previous one's last frame.

The optimisation runs on one torch thread (its tensors are small, so more threads only
contend with each other and with the detector) with torch's deterministic kernels, so a
fit is bit-identical from run to run and between processes whatever their thread settings.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import roma
import torch

from champ3d.body.base import BodyModel, BodyParams
from champ3d.body.keypoints import hand_slice, keypoint_index
from champ3d.detect.mediapipe_person import POSE_HIPS, POSE_SHOULDERS, POSE_TO_KEYPOINT, PersonDetections
from champ3d.fitting.camera import CameraIntrinsics


@dataclass
class FitSettings:
    shape_frames: int = 12
    chunk_size: int = 256
    shape_iterations: tuple[int, int] = (40, 30)  # (3D-only, full) Adam steps for the shape pass
    pose_iterations: tuple[int, int] = (30, 50)  # (3D-only, full) Adam steps per chunk
    learning_rate: float = 0.04
    shape_learning_rate: float = 0.02  # for the shape's logits
    weights: dict = field(default_factory=lambda: {
        "pose_3d": 1.0, "pose_2d": 4.0, "hand_2d": 1.0, "hand_3d": 0.5,
        "silhouette_inside": 10.0, "silhouette_cover": 8.0,
        "body_prior": 2e-4, "hand_prior": 1e-4, "knee": 1e-2, "shape_prior": 1e-3, "smooth": 40.0,
        "depth_tilt": 0.0,
    })
    robust_sigma: float = 0.05  # GMoF scale, in bounding-box heights
    min_hand_score: float = 0.5
    silhouette_points: int = 600  # surface points matched to the segmentation
    outline_points: int = 96  # segmentation outline samples per frame
    rematch_every: int = 5  # optimiser steps between matchings of outline samples to surface points

    @classmethod
    def for_image(cls) -> "FitSettings":
        """A single photo: no temporal evidence, so more steps for the one frame."""
        return cls(shape_frames=1, shape_iterations=(100, 150))

    def upright(self) -> "FitSettings":
        """These settings with the torso and legs held near the image plane (``depth_tilt``
        in the module docstring): for a body shown from the side in its own pose."""
        return replace(self, weights={**self.weights, "depth_tilt": 3.0})

    def tight(self) -> "FitSettings":
        """These settings with the body held inside the person's segmentation (module
        docstring): for views baked into a texture."""
        return replace(self, weights={**self.weights, "silhouette_inside": 200.0, "silhouette_cover": 30.0})


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
_MODEL_SHOULDERS = [keypoint_index("left_shoulder"), keypoint_index("right_shoulder")]
_LEG_SEGMENTS = [(keypoint_index(f"{side}_{top}"), keypoint_index(f"{side}_{bottom}"))
                 for side in ("left", "right") for top, bottom in (("hip", "knee"), ("knee", "ankle"))]


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


class _Silhouettes:
    """MediaPipe's person segmentation of some frames, as differentiable targets.

    ``inside(pixels)``: each projected surface point's distance to the segmentation, read
    bilinearly from the distance transform of the mask's outside (0 inside). ``cover(pixels)``:
    for each of ``outline_points`` samples of the segmentation's largest outer contour, the
    squared distance to its matched projected surface point, the nearest one when last
    matched (``rematch``: matching is most of the term's cost and the points move little
    between steps, so the optimiser rematches every few steps, as ICP does). Both in image
    pixels; the loss divides them by the bounding-box height. ``present`` is 0 for frames without a
    segmentation (an empty mask), which then add nothing.
    """

    def __init__(self, det: PersonDetections, frames: np.ndarray, camera: CameraIntrinsics, outline_points: int):
        masks = det.masks[frames]
        h, w = masks.shape[1:]
        self.size = (h, w)
        self.to_mask = torch.tensor([w / camera.width, h / camera.height])
        distances, outlines, present = [], [], []
        for mask in masks:
            binary = (mask >= 128).astype(np.uint8)
            present.append(bool(binary.any()))
            distances.append(cv2.distanceTransform(1 - binary, cv2.DIST_L2, 3) if binary.any()
                             else np.zeros_like(binary, np.float32))
            outlines.append(_outline(binary, outline_points))
        # distances in image pixels; outline samples in image pixels
        self.distance = torch.from_numpy(np.stack(distances))[:, None] / self.to_mask.mean()
        self.outline = (torch.from_numpy(np.stack(outlines)) + 0.5) / self.to_mask - 0.5
        self.present = torch.tensor(present, dtype=torch.float32)
        self._matched = None

    def inside(self, pixels: torch.Tensor) -> torch.Tensor:
        """(T, N, 2) image pixels -> (T, N) distance to the segmentation, image pixels."""
        h, w = self.size
        mask_xy = (pixels + 0.5) * self.to_mask - 0.5
        grid = torch.stack((mask_xy[..., 0] / (w - 1), mask_xy[..., 1] / (h - 1)), dim=-1) * 2 - 1
        sampled = torch.nn.functional.grid_sample(self.distance, grid[:, :, None], mode="bilinear",
                                                  padding_mode="border", align_corners=True)
        return sampled[:, 0, :, 0]

    def cover(self, pixels: torch.Tensor, rematch: bool) -> torch.Tensor:
        """(T, N, 2) image pixels -> (T, C) squared distance of each outline sample to its
        matched projected point, image pixels squared."""
        if rematch or self._matched is None:
            with torch.no_grad():
                self._matched = torch.cdist(self.outline, pixels).argmin(dim=2)  # (T, C)
        closest = pixels.gather(1, self._matched[..., None].expand(-1, -1, 2))
        return (self.outline - closest).pow(2).sum(-1)


def _outline(binary: np.ndarray, count: int) -> np.ndarray:
    """``count`` points evenly spaced along the largest outer contour (mask pixels)."""
    if not binary.any():
        return np.zeros((count, 2), np.float32)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)[:, 0].astype(np.float32)
    steps = np.linalg.norm(np.diff(contour, axis=0, append=contour[:1]), axis=1)
    along = np.concatenate(([0.0], np.cumsum(steps)[:-1]))
    targets = np.arange(count) * (along[-1] + steps[-1]) / count
    index = np.searchsorted(along, targets, side="right") - 1
    return contour[np.clip(index, 0, len(contour) - 1)]


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


def surface_point_ids(body: BodyModel, count: int) -> torch.Tensor:
    """``count`` vertices spread evenly over the rest-pose surface (farthest-point sampling
    from vertex 0; deterministic)."""
    with torch.no_grad():
        vertices = body(body.zero_params(1)).vertices[0]
    count = min(count, len(vertices))
    chosen = torch.zeros(count, dtype=torch.long)
    nearest = (vertices - vertices[0]).pow(2).sum(-1)
    for i in range(1, count):
        chosen[i] = torch.argmax(nearest)
        nearest = torch.minimum(nearest, (vertices - vertices[chosen[i]]).pow(2).sum(-1))
    return chosen


def _gmof(residual_sq: torch.Tensor, sigma: float) -> torch.Tensor:
    return sigma**2 * residual_sq / (sigma**2 + residual_sq)


@contextlib.contextmanager
def reproducible_torch():
    """One intra-op thread and torch's deterministic kernels for the block (with the default
    kernels, repeated fits of the same detections in one process differed in the last bits)."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


class BodyFitter:
    def __init__(self, body: BodyModel, settings: FitSettings | None = None):
        self.body = body
        self.settings = settings or FitSettings()
        self._surface_ids = None

    # -- public ------------------------------------------------------------------------
    def fit(self, det: PersonDetections, camera: CameraIntrinsics, progress=None) -> BodyFit:
        if not det.found.any():
            raise ValueError("no person was found in any frame")
        with reproducible_torch():
            return self._fit(det, camera, progress)

    def _fit(self, det: PersonDetections, camera: CameraIntrinsics, progress) -> BodyFit:
        s = self.settings
        T = det.num_frames
        shape_ids = np.unique(np.linspace(0, T - 1, min(T, s.shape_frames)).round().astype(int))
        shape_ids = shape_ids[det.found[shape_ids]] if det.found[shape_ids].any() else shape_ids
        shape_fit = self._fit_frames(det, camera, shape_ids, s.shape_iterations, fit_shape=True)
        shape = shape_fit.shape.detach()
        if len(shape_ids) == T:  # the shape pass already fitted every frame
            return self._result(shape_fit.detach(), det, camera)

        # every frame starts from the pose of the nearest shape-pass frame
        nearest = np.abs(np.arange(T)[:, None] - shape_ids[None]).argmin(axis=1)
        chunks = [np.arange(a, min(a + s.chunk_size, T)) for a in range(0, T, s.chunk_size)]
        results, previous = [], None
        for frames in (progress(chunks) if progress else chunks):
            start = shape_fit.select(torch.from_numpy(nearest[frames]))
            if previous is not None:  # continue smoothly from the previous chunk
                start.body_pose[0], start.hand_pose[0] = previous.body_pose[0], previous.hand_pose[0]
            params = self._fit_frames(det, camera, frames, s.pose_iterations, shape=shape, start=start)
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
    def _fit_frames(self, det, camera, frames, iterations, fit_shape=False, shape=None, start=None) -> BodyParams:
        s = self.settings
        tg = _Targets(det, frames, s.min_hand_score)
        n = len(frames)
        body = self.body
        shape0 = body.default_shape()[None] if shape is None else shape
        shape_logit = torch.logit(shape0.clamp(1e-3, 1 - 1e-3)).clone().requires_grad_(fit_shape)
        orient = initial_orientation(tg.world).requires_grad_(True)
        if start is None:
            body_pose = torch.zeros(n, body.num_body_joints, 3)
            hand_pose = torch.zeros(n, body.num_hand_joints, 3)
        else:
            body_pose, hand_pose = start.body_pose.clone(), start.hand_pose.clone()
        body_pose.requires_grad_(True)
        hand_pose.requires_grad_(True)
        silhouettes = None
        if s.weights["silhouette_inside"] > 0 or s.weights["silhouette_cover"] > 0:
            silhouettes = _Silhouettes(det, frames, camera, s.outline_points)
            if self._surface_ids is None:
                self._surface_ids = surface_point_ids(body, s.silhouette_points)

        def params_with(transl, shape=None):
            return BodyParams(torch.sigmoid(shape_logit) if shape is None else shape, orient, body_pose, hand_pose,
                              transl)

        # stage 1: relative 3D pose and facing (translation-free terms only, the shape held)
        zero_t = torch.zeros(n, 3)
        held_shape = torch.sigmoid(shape_logit).detach()
        rot_vars = [orient, body_pose, hand_pose]
        opt = torch.optim.Adam(rot_vars, lr=s.learning_rate, fused=True)
        for _ in range(iterations[0]):
            opt.zero_grad()
            params = params_with(zero_t, held_shape)
            loss = self._loss(params, body.keypoints(params), tg, camera, use_2d=False, fit_shape=False)
            loss.backward()
            opt.step()

        # closed-form root position, then everything jointly
        with torch.no_grad():
            kp = body.keypoints(params_with(zero_t, held_shape))
            transl0 = _solve_translation(kp[:, _MODEL_IDS], tg.x2d, tg.vis, camera)
        uv = ((transl0[:, :2] / transl0[:, 2:]) * torch.tensor([camera.fx, camera.fy]) / camera.height).clone()
        log_z = transl0[:, 2:].log().clone()
        uv.requires_grad_(True)
        log_z.requires_grad_(True)

        def transl_now():
            z = log_z.exp()
            xy = uv * camera.height / torch.tensor([camera.fx, camera.fy]) * z
            return torch.cat((xy, z), dim=1)

        # stage 2: everything, with the shape in the shape pass
        groups = [{"params": rot_vars + [uv, log_z]}]
        if fit_shape:
            groups.append({"params": [shape_logit], "lr": s.shape_learning_rate})
        opt = torch.optim.Adam(groups, lr=s.learning_rate * 0.5, fused=True)
        for step in range(iterations[1]):
            opt.zero_grad()
            params = params_with(transl_now())
            if silhouettes is None:
                loss = self._loss(params, body.keypoints(params), tg, camera, use_2d=True, fit_shape=fit_shape)
            else:
                kp, surface = body.keypoints_and_vertices(params, self._surface_ids)
                loss = self._loss(params, kp, tg, camera, use_2d=True, fit_shape=fit_shape)
                rematch = step % s.rematch_every == 0
                loss = loss + self._silhouette_loss(surface, tg, silhouettes, camera, rematch)
            loss.backward()
            opt.step()
        return params_with(transl_now()).detach()

    def _silhouette_loss(self, surface: torch.Tensor, tg: _Targets, silhouettes: _Silhouettes,
                         camera: CameraIntrinsics, rematch: bool) -> torch.Tensor:
        w = self.settings.weights
        sigma = self.settings.robust_sigma
        pixels = camera.project(surface)
        scale = tg.scale[:, None]
        present = silhouettes.present
        frames = present.sum().clamp(min=1.0)
        inside = (silhouettes.inside(pixels) / scale).pow(2).mean(1)
        cover = _gmof(silhouettes.cover(pixels, rematch) / scale.pow(2), sigma).mean(1)
        return (w["silhouette_inside"] * (present * inside).sum() + w["silhouette_cover"] * (present * cover).sum()) \
            / frames * 100.0

    def _loss(self, params: BodyParams, kp: torch.Tensor, tg: _Targets, camera: CameraIntrinsics, use_2d: bool,
              fit_shape: bool):
        """The keypoint terms and priors of ``params`` with keypoints ``kp``."""
        w = self.settings.weights
        sigma = self.settings.robust_sigma
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
        if w["depth_tilt"] > 0:
            loss = loss + w["depth_tilt"] * _depth_tilt(kp).pow(2).sum() / n
        loss = loss + w["body_prior"] * params.body_pose.pow(2).sum() / n
        loss = loss + w["hand_prior"] * params.hand_pose.pow(2).sum() / n
        knee = params.body_pose[:, list(self.body.knee_joints)]  # a hinge: flexion is +x only
        loss = loss + w["knee"] * (knee[..., 1:].pow(2).sum() + torch.relu(-knee[..., 0]).pow(2).sum()) / n
        if fit_shape:
            deviation = (params.shape - self.body.default_shape()[None]) * self.body.shape_prior_scale()
            loss = loss + w["shape_prior"] * deviation.pow(2).sum()
        return loss


def _depth_tilt(kp: torch.Tensor) -> torch.Tensor:
    """(T, 5) sine of the angle between the image plane and the torso (hip centre to
    shoulder centre), both thighs and both shins of keypoints ``kp`` (T, K, 3), camera frame."""
    torso = kp[:, _MODEL_SHOULDERS].mean(1) - kp[:, _MODEL_HIPS].mean(1)
    top, bottom = zip(*_LEG_SEGMENTS)
    segments = torch.cat([torso[:, None], kp[:, list(top)] - kp[:, list(bottom)]], dim=1)
    return segments[..., 2] / segments.norm(dim=-1).clamp(min=1e-9)


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
