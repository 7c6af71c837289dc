"""The static pinhole camera a clip is fitted in.

Champ (via HMR2) uses f = 5000 / 256 · max(W, H) pixels (``render.cameras.champ_focal``)
with the principal point at the image centre: a near-orthographic camera that puts the
person tens of metres away. That is champ3d's default; a realistic field of view is
``focal_scale`` ≈ 1.1. Axes and pixel conventions are those of ``render.cameras``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from render.cameras import CHAMP_FOCAL_SCALE, PerspectiveCameras, champ_focal


@dataclass(frozen=True)
class CameraIntrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def centred(cls, width: int, height: int, focal_scale: float = CHAMP_FOCAL_SCALE) -> "CameraIntrinsics":
        focal = champ_focal(width, height, focal_scale)
        return cls(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    def to_dict(self) -> dict:
        return asdict(self)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 3) camera-frame points -> (..., 2) pixel coordinates (differentiable)."""
        z = points[..., 2:3].clamp(min=1e-6)
        xy = points[..., :2] / z
        return torch.stack((self.fx * xy[..., 0] + self.cx, self.fy * xy[..., 1] + self.cy), dim=-1)

    def resized(self, width: int, height: int) -> "CameraIntrinsics":
        """The same camera for the image resized to (width, height) (pixel-centre convention)."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, int(width), int(height)
        )

    def to_cameras(self, batch_size: int = 1) -> PerspectiveCameras:
        """This static camera as ``batch_size`` identical render cameras (world = camera frame)."""
        eye = np.broadcast_to(np.eye(3, dtype=np.float32), (batch_size, 3, 3))
        return PerspectiveCameras(
            R=eye, T=np.zeros((batch_size, 3), np.float32), focal_length=(self.fx, self.fy),
            image_size=(self.height, self.width), principal_point=(self.cx, self.cy),
        )
