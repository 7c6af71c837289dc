"""Shape alignment: the reference person's body performs the driver's motion.

For driving frame k the aligned body has

* the **reference shape** (``keep_driver_shape`` keeps the driver's instead);
* the driver's joint and finger rotations of frame k, and its facing *relative to its
  first frame* applied to the reference person's facing: ``R_k = C · R_drv,k`` where C
  turns about the image's vertical axis by the difference between the reference's and
  the driver's frame-0 torso headings, the driver's measured on its pose with the output
  shape (``face_like_reference``; off keeps the driver's absolute facing, as Champ
  does). Only the heading is corrected: a lean or tilt of the driver stays the driver's;
* a root translation that keeps the driver's movement through space relative to its
  first frame, placed where the reference person stands:
  ``t_k = t_ref + C · D · (t_drv,k − t_drv,0) + p``, with ``D = diag(s, s, z_ref / z_drv,0)``
  and ``s`` = reference body height / driver body height. Sideways and vertical moves are
  thus measured in body heights (as they look in the driving video) and moves in depth
  keep their relative change of apparent size;
* the **reference camera** (intrinsics and image size), so frame 0 overlaps the reference
  person. ``keep_driver_camera`` renders in the driver's camera with the driver's own
  translations instead (only the shape is swapped).

The placement ``p`` is one shift, parallel to the image plane, for the whole sequence:
it puts frame 0's torso centre (the mean of shoulders and hips, projected) on the
reference body's torso centre in the image, so a driver who leans or stands with the
weight on one leg still overlaps the reference person (matching the roots, the pelvis,
would leave a lean's whole offset at the shoulders and head). With ``reground`` the
vertical part instead moves the feet of frame 0 onto the reference body's feet (the
lowest projected points; bone lengths change with the shape), so the body stands on the
reference person's floor.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import roma
import torch

from champ3d.body.base import BodyModel, BodyParams
from champ3d.body.keypoints import keypoint_index
from champ3d.fitting.fitter import BodyFit


@dataclass
class AlignSettings:
    keep_driver_shape: bool = False
    keep_driver_camera: bool = False
    face_like_reference: bool = True
    reground: bool = True


def body_height(body: BodyModel, shape: torch.Tensor) -> float:
    """Standing height (metres) of the rest-pose body with ``shape``."""
    with torch.no_grad():
        vertices = body(body.zero_params(1, shape)).vertices[0]
    return float(vertices[:, 1].max() - vertices[:, 1].min())


def torso_frame(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, K, 3) keypoints -> (B, 3, 3) rotation whose columns are the torso's left, down
    (shoulders to hips) and backward axes in the camera frame."""
    ids = lambda *names: [keypoint_index(n) for n in names]
    hips, shoulders = keypoints[:, ids("left_hip", "right_hip")], keypoints[:, ids("left_shoulder", "right_shoulder")]
    left = (hips[:, 0] - hips[:, 1]) + (shoulders[:, 0] - shoulders[:, 1])
    y = torch.nn.functional.normalize(hips.mean(1) - shoulders.mean(1), dim=-1)
    x = torch.nn.functional.normalize(left - (left * y).sum(-1, keepdim=True) * y, dim=-1)
    return torch.stack((x, y, torch.cross(x, y, dim=-1)), dim=-1)


def align(reference: BodyFit, driving: BodyFit, body: BodyModel, settings: AlignSettings | None = None) -> BodyFit:
    settings = settings or AlignSettings()
    drv = driving.params
    shape = drv.shape if settings.keep_driver_shape else reference.params.shape
    if settings.keep_driver_camera:
        params = replace(drv, shape=shape)
        return replace(driving, params=params)

    ref_t = reference.params.transl[0]
    scale = body_height(body, reference.params.shape) / body_height(body, drv.shape)
    depth_ratio = ref_t[2] / drv.transl[0, 2]
    factors = torch.tensor([scale, scale, float(depth_ratio)], dtype=drv.transl.dtype)
    facing = roma.rotvec_to_rotmat(drv.global_orient)
    correction = torch.eye(3, dtype=facing.dtype)
    if settings.face_like_reference:
        with torch.no_grad():
            ref_frame = torso_frame(body.keypoints(reference.params.select(slice(0, 1))))[0]
            drv_frame = torso_frame(body.keypoints(replace(drv.select(slice(0, 1)), shape=shape)))[0]
        heading = lambda frame: torch.atan2(frame[0, 2], frame[2, 2])  # backward axis in the x-z plane
        correction = roma.rotvec_to_rotmat(
            torch.tensor([0.0, float(heading(ref_frame) - heading(drv_frame)), 0.0])
        )
    transl = ref_t[None] + ((drv.transl - drv.transl[:1]) * factors) @ correction.T
    params = BodyParams(
        shape=shape,
        global_orient=roma.rotmat_to_rotvec(correction @ facing),
        body_pose=drv.body_pose.clone(),
        hand_pose=drv.hand_pose.clone(),
        transl=transl,
    )
    params = _place(params, reference, body, settings.reground)
    return BodyFit(
        params=params,
        camera=reference.camera,
        interpolated=driving.interpolated.copy(),
        error_2d=np.full(driving.num_frames, np.nan, np.float32),
        backend=driving.backend,
    )


_TORSO = [keypoint_index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]


def _place(params: BodyParams, reference: BodyFit, body: BodyModel, reground: bool) -> BodyParams:
    """Shift every frame, parallel to the image plane, so that frame 0's torso centre
    projects onto the reference body's (horizontally only with ``reground``, whose feet
    then set the height)."""
    cam = reference.camera
    focal = torch.tensor([cam.fx, cam.fy], dtype=params.transl.dtype)
    with torch.no_grad():
        ref_centre = cam.project(body.keypoints(reference.params.select(slice(0, 1)))[0, _TORSO]).mean(0)
        new_centre = cam.project(body.keypoints(params.select(slice(0, 1)))[0, _TORSO]).mean(0)
    shift = (ref_centre - new_centre) * params.transl[0, 2] / focal
    transl = params.transl.clone()
    transl[:, 0] += shift[0]
    if not reground:
        transl[:, 1] += shift[1]
        return replace(params, transl=transl)
    return _reground(replace(params, transl=transl), reference, body)


def _reground(params: BodyParams, reference: BodyFit, body: BodyModel) -> BodyParams:
    """Shift every frame vertically so frame 0's lowest point matches the reference body's."""
    cam = reference.camera
    with torch.no_grad():
        ref_vertices = body(reference.params.select(slice(0, 1))).vertices[0]
        new_vertices = body(params.select(slice(0, 1))).vertices[0]
    ref_feet = cam.project(ref_vertices)[:, 1].max()
    new_feet = cam.project(new_vertices)[:, 1].max()
    shift = (ref_feet - new_feet) * params.transl[0, 2] / cam.fy
    transl = params.transl.clone()
    transl[:, 1] += shift
    return replace(params, transl=transl)
