"""Shape alignment: the reference person's body performs the driver's motion.

For driving frame k the aligned body has

* the **reference shape** (``keep_driver_shape`` keeps the driver's instead);
* the driver's facing, joint and finger rotations of frame k;
* a root translation that keeps the driver's movement through space relative to its
  first frame, placed where the reference person stands:
  ``t_k = t_ref + D · (t_drv,k − t_drv,0)``, with ``D = diag(s, s, z_ref / z_drv,0)``
  and ``s`` = reference body height / driver body height. Sideways and vertical moves are
  thus measured in body heights (as they look in the driving video) and moves in depth
  keep their relative change of apparent size;
* the **reference camera** (intrinsics and image size), so frame 0 overlaps the reference
  person. ``keep_driver_camera`` renders in the driver's camera with the driver's own
  translations instead (only the shape is swapped).

With ``reground`` the whole sequence is shifted vertically so that the feet of frame 0
stand where the reference body's feet stand (bone lengths change with the shape).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from champ3d.body.base import BodyModel, BodyParams
from champ3d.fitting.fitter import BodyFit


@dataclass
class AlignSettings:
    keep_driver_shape: bool = False
    keep_driver_camera: bool = False
    reground: bool = True


def body_height(body: BodyModel, shape: torch.Tensor) -> float:
    """Standing height (metres) of the rest-pose body with ``shape``."""
    with torch.no_grad():
        vertices = body(body.zero_params(1, shape)).vertices[0]
    return float(vertices[:, 1].max() - vertices[:, 1].min())


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
    transl = ref_t[None] + (drv.transl - drv.transl[:1]) * factors
    params = BodyParams(
        shape=shape,
        global_orient=drv.global_orient.clone(),
        body_pose=drv.body_pose.clone(),
        hand_pose=drv.hand_pose.clone(),
        transl=transl,
    )
    if settings.reground:
        params = _reground(params, reference, body)
    return BodyFit(
        params=params,
        camera=reference.camera,
        interpolated=driving.interpolated.copy(),
        error_2d=np.full(driving.num_frames, np.nan, np.float32),
        backend=driving.backend,
    )


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
