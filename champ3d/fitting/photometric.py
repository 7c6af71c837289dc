"""Photometric pose refinement: move a fitted body until its textured render reproduces the
frame (analysis by synthesis, for views of the person whose texture is known).

Keypoints and the person's segmentation pin a pose down to a few pixels; where a turn or a
side view leaves them ambiguous, two fits of neighbouring frames put the same surface point
on different pixels, so a texture baked from one does not re-render the other. This stage
refines one frame's ``global_orient``, ``body_pose`` and ``transl`` (shape, hands and camera
stay) against a known texture:

* the body is rasterised once per level; each pixel inside the render (eroded by
  :data:`COVERAGE_EROSION_PX`) and inside the person's segmentation (eroded by
  ``mask_erosion_px``) whose texel the texture has seen keeps its surface point
  (triangle and barycentrics) and the textured colour it shows;
* the pose is then optimised so that each such surface point, re-projected, lands on the
  image colour its texel holds: a Geman-McClure robust squared RGB distance (scale
  ``robust_scale``) between the image sampled at the point's new projection and the
  render, plus ``prior_weight`` times the squared change of the pose from the fit (joint
  and root rotations in radians, translation in units of the body's depth);
* coarse to fine: image and render (over the image's own background) are blurred by
  each of ``blur_sigmas`` pixels in turn, so that misalignments of several pixels still
  have a gradient.

The refined pose is kept only when it lowers the unblurred robust error over the pixels
of its own render; otherwise the fit is returned unchanged. Like the fitter, it runs on one
torch thread with deterministic kernels, so a refinement is bit-identical from run to run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np
import torch

from champ3d.body.base import BodyModel, BodyParams
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import reproducible_torch
from render.rasterizer import MeshRasterizer
from texture.bake import TextureSample, eroded_mask
from texture.sampling import sample_texture

#: Render coverage erosion (pixels): contour pixels mix body and background.
COVERAGE_EROSION_PX = 2


@dataclass(frozen=True)
class PhotometricSettings:
    blur_sigmas: Tuple[float, ...] = (4.0, 2.0, 1.0)  # image pixels, coarse to fine
    steps_per_level: int = 40  # Adam steps at each blur level
    learning_rate: float = 0.01
    prior_weight: float = 1e-3
    robust_scale: float = 0.5  # squared RGB distance (values in [0, 1]) where the penalty reaches half
    mask_erosion_px: int = 3  # person-segmentation erosion, pixels


@dataclass
class RefinedPose:
    """The robust photometric error of the fit (``error_before``) and of the optimised pose
    (``error_after``); ``params`` (one frame) is the optimised pose when that lowered the
    error (``kept``), else the fit unchanged."""

    params: BodyParams
    error_before: float
    error_after: float

    @property
    def kept(self) -> bool:
        return self.error_after < self.error_before


@dataclass
class _Correspondences:
    """The surface point drawn at each selected pixel and the render's colour there."""

    vertex_ids: torch.Tensor  # (U,) distinct vertices of the triangles involved
    corners: torch.Tensor  # (N, 3) positions in ``vertex_ids`` of each pixel's triangle corners
    bary: torch.Tensor  # (N, 3)
    colour: torch.Tensor  # (N, 3) render colour (blurred like the image)


class PhotometricRefiner:
    """Refines single-frame fits of ``body`` seen by ``camera`` against a texture (module
    docstring)."""

    def __init__(self, body: BodyModel, camera: CameraIntrinsics, settings: PhotometricSettings | None = None):
        self.body = body
        self.camera = camera
        self.settings = settings or PhotometricSettings()
        faces = body.faces.detach().cpu()
        self._faces = faces.long()
        self._corner_uv = body.corner_uvs()
        self._rasterizer = MeshRasterizer(faces.numpy(), (camera.height, camera.width), frames_per_pass=1)
        self._cameras = camera.to_cameras()

    def __call__(self, image: np.ndarray, person_mask: np.ndarray, params: BodyParams,
                 texture: TextureSample) -> RefinedPose:
        """Refine ``params`` (one frame) so the body textured with ``texture`` (colour in
        [0, 1]; pixels are compared where the texels they sample all have confidence > 0)
        matches ``image`` (uint8 RGB) inside ``person_mask``."""
        if params.batch_size != 1:
            raise ValueError(f"params: expected one frame, got {params.batch_size}")
        with reproducible_torch():
            return self._refine(image, person_mask, params, texture)

    def _refine(self, image, person_mask, params: BodyParams, texture: TextureSample) -> RefinedPose:
        s = self.settings
        photo = np.asarray(image, np.float32) / 255.0
        on_person = eroded_mask(person_mask, s.mask_erosion_px)
        seen = texture.seen[..., None].astype(np.float32)
        draw = lambda pose: self._render(pose, texture.colour, seen, photo, on_person)
        start = params.detach()
        variables = [start.global_orient.clone().requires_grad_(True), start.body_pose.clone().requires_grad_(True),
                     start.transl.clone().requires_grad_(True)]
        optimiser = torch.optim.Adam(variables, lr=s.learning_rate)
        current = lambda: BodyParams(start.shape, variables[0], variables[1], start.hand_pose, variables[2])
        depth = start.transl[:, 2:].abs().clamp(min=1e-3)
        render, valid, fragments = draw(start)
        error_before = self._error(render, valid, photo)
        for level, sigma in enumerate(s.blur_sigmas):
            if level > 0:
                render, valid, fragments = draw(current().detach())
            found = self._correspondences(fragments, render, valid, sigma)
            if found is None:
                break
            target = torch.from_numpy(np.ascontiguousarray(_blur(photo, sigma).transpose(2, 0, 1)))[None]
            for _ in range(s.steps_per_level):
                optimiser.zero_grad()
                pose = current()
                _, corner_points = self.body.keypoints_and_vertices(pose, found.vertex_ids)
                points = (corner_points[0][found.corners] * found.bary[..., None]).sum(dim=1)
                residual = (self._sample(target, self.camera.project(points)) - found.colour).square().sum(dim=-1)
                prior = ((variables[0] - start.global_orient).square().sum() + (variables[1] - start.body_pose).square().sum()
                         + ((variables[2] - start.transl) / depth).square().sum())
                loss = (residual / (residual + s.robust_scale)).mean() + s.prior_weight * prior
                loss.backward()
                optimiser.step()
        refined = current().detach()
        error_after = self._error(*draw(refined)[:2], photo)
        return RefinedPose(refined if error_after < error_before else start, error_before, error_after)

    # -- pieces --------------------------------------------------------------------------
    def _render(self, params: BodyParams, colour: np.ndarray, seen: np.ndarray, photo: np.ndarray,
                on_person: np.ndarray):
        """The body with texture ``colour`` over ``photo`` (float (H, W, 3)), the (H, W)
        pixels to compare (eroded coverage, on the person, texels all ``seen`` (A, A, 1)
        float) and the raster fragments."""
        with torch.no_grad():
            vertices = self.body(params).vertices.cpu().numpy()
        fragments = self._rasterizer(vertices, self._cameras, corner_attributes=self._corner_uv)
        covered = fragments.mask[0]
        uv = fragments.attributes[0][covered]
        all_seen = np.zeros(covered.shape, bool)
        all_seen[covered] = sample_texture(seen, uv)[:, 0] > 0.999  # the 4 texels sampled
        render = photo.copy()
        render[covered] = sample_texture(colour, uv)
        valid = eroded_mask(covered, COVERAGE_EROSION_PX) & all_seen & on_person
        return render, valid, fragments

    def _error(self, render: np.ndarray, pixels: np.ndarray, photo: np.ndarray) -> float:
        """Mean robust photometric error over ``pixels``."""
        if not pixels.any():
            return float("inf")
        residual = np.square(render[pixels] - photo[pixels]).sum(axis=-1)
        return float(np.mean(residual / (residual + self.settings.robust_scale)))

    def _correspondences(self, fragments, render: np.ndarray, pixels: np.ndarray, sigma: float):
        rows, cols = np.nonzero(pixels)
        if len(rows) == 0:
            return None
        triangles = self._faces[torch.from_numpy(fragments.pix_to_face[0][rows, cols]).long()]
        vertex_ids, corners = torch.unique(triangles.reshape(-1), return_inverse=True)
        return _Correspondences(vertex_ids, corners.reshape(-1, 3),
                                torch.from_numpy(fragments.bary_coords[0][rows, cols]),
                                torch.from_numpy(_blur(render, sigma)[rows, cols]))

    def _sample(self, image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3) bilinear values of ``image`` (1, 3, H, W) at (N, 2) pixel coordinates."""
        size = torch.tensor([self.camera.width - 1, self.camera.height - 1], dtype=pixels.dtype)
        grid = (pixels / size * 2.0 - 1.0)[None, :, None]
        return torch.nn.functional.grid_sample(image, grid, align_corners=True, padding_mode="border")[0, :, :, 0].T


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image
