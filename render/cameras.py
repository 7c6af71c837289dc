"""Batched pinhole cameras: the camera convention of champ3d, written once here.

Camera frame (OpenCV): x points right, y points down, z points forward (away from the
camera, into the scene). Units are metres.

World to camera: ``X_c = R @ X_w + T`` with ``R`` a (3, 3) rotation and ``T`` a (3,)
translation, one pair per batch element.

Intrinsics are in pixels: ``u = fx * x / z + cx``, ``v = fy * y / z + cy``, where ``u`` is the
column and ``v`` the row. **Integer pixel coordinates are pixel centres**: pixel (0, 0) is the
centre of the top-left pixel, the image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``, and a
point projecting to (u, v) lies inside pixel ``(round(u), round(v))``. This is OpenCV's
convention (``cv2.projectPoints``, ``cv2.circle``). The geometric image centre is therefore
``((W - 1) / 2, (H - 1) / 2)``.

``depth`` always means planar depth, the camera-frame z coordinate (not the distance
along the ray).

Image sizes are ``(H, W)`` (rows, columns), as numpy shapes are.

Arrays are numpy float32, batched along the first axis (B).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

#: Champ/HMR2 focal length: ``EXTRA.FOCAL_LENGTH / MODEL.IMAGE_SIZE`` = 5000 / 256, times the
#: longer image side.
CHAMP_FOCAL_SCALE = 5000.0 / 256.0


def champ_focal(width: int, height: int, scale: float = CHAMP_FOCAL_SCALE) -> float:
    """Champ's (4D-Humans HMR2) focal length in pixels: ``scale * max(width, height)``."""
    return float(scale) * max(int(width), int(height))


def _batched(name: str, value, tail: Tuple[int, ...]) -> np.ndarray:
    """``value`` as float32 of shape (B, *tail); an unbatched (*tail) value gets B = 1."""
    array = np.asarray(value, dtype=np.float32)
    if array.shape == tail:
        array = array[None]
    if array.ndim != len(tail) + 1 or array.shape[1:] != tail:
        raise ValueError(f"{name}: expected shape (B, {', '.join(map(str, tail))}) or {tail}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


class PerspectiveCameras:
    """A batch of B pinhole cameras sharing one image size (see the module docstring).

    Args:
        R: (B, 3, 3) or (3, 3) world-to-camera rotations.
        T: (B, 3) or (3,) world-to-camera translations, metres.
        focal_length: (B, 2) or (2,) ``(fx, fy)`` in pixels, or a scalar for fx = fy.
        principal_point: (B, 2) or (2,) ``(cx, cy)`` in pixels (pixel-centre convention);
            ``None`` puts it at the image centre ``((W - 1) / 2, (H - 1) / 2)``.
        image_size: ``(H, W)``.
        znear: surfaces nearer than this planar depth (metres) are clipped away.

    Unbatched arguments are broadcast to the batch size of the batched ones.
    """

    def __init__(self, R, T, focal_length, image_size: Tuple[int, int], principal_point=None, znear: float = 0.01):
        H, W = (int(s) for s in image_size)
        if H <= 0 or W <= 0:
            raise ValueError(f"image_size must be positive (H, W), got {image_size}")
        if not znear > 0:
            raise ValueError(f"znear must be positive, got {znear}")
        focal = np.asarray(focal_length, dtype=np.float32)
        if focal.ndim == 0:
            focal = np.stack([focal, focal])
        if principal_point is None:
            principal_point = ((W - 1) / 2.0, (H - 1) / 2.0)
        parts = {
            "R": _batched("R", R, (3, 3)),
            "T": _batched("T", T, (3,)),
            "focal_length": _batched("focal_length", focal, (2,)),
            "principal_point": _batched("principal_point", principal_point, (2,)),
        }
        batch = max(p.shape[0] for p in parts.values())
        for name, p in parts.items():
            if p.shape[0] not in (1, batch):
                raise ValueError(f"{name}: batch size {p.shape[0]} does not match {batch}")
            parts[name] = np.ascontiguousarray(np.broadcast_to(p, (batch,) + p.shape[1:]))
        if np.any(parts["focal_length"] <= 0):
            raise ValueError("focal_length must be positive")
        self.R: np.ndarray = parts["R"]
        self.T: np.ndarray = parts["T"]
        self.focal_length: np.ndarray = parts["focal_length"]
        self.principal_point: np.ndarray = parts["principal_point"]
        self.image_size: Tuple[int, int] = (H, W)
        self.znear = float(znear)

    @classmethod
    def champ(cls, image_size: Tuple[int, int], T=(0.0, 0.0, 0.0), R=None, focal_scale: float = CHAMP_FOCAL_SCALE,
              znear: float = 0.05) -> "PerspectiveCameras":
        """Champ's render camera: ``f = focal_scale * max(W, H)``, principal point at the image
        centre, identity rotation unless given (Champ places the mesh at ``verts + cam_t`` in
        the camera frame; pass that translation as ``T``), near clip 0.05 m as its Blender
        scene."""
        H, W = image_size
        rotation = np.eye(3, dtype=np.float32) if R is None else R
        return cls(rotation, T, champ_focal(W, H, focal_scale), image_size, znear=znear)

    def __len__(self) -> int:
        return self.R.shape[0]

    def __getitem__(self, index) -> "PerspectiveCameras":
        """The cameras at ``index`` (an int, slice or index array), still batched."""
        sel = np.arange(len(self))[index]
        sel = np.atleast_1d(sel)
        return PerspectiveCameras(self.R[sel], self.T[sel], self.focal_length[sel], self.image_size,
                                  self.principal_point[sel], self.znear)

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(B, N, 3) or (N, 3) world points -> (B, N, 3) camera-frame points."""
        p = np.asarray(points, dtype=np.float32)
        if p.ndim == 2:
            p = p[None]
        if p.ndim != 3 or p.shape[2] != 3 or p.shape[0] not in (1, len(self)):
            raise ValueError(f"points: expected (B={len(self)}, N, 3) or (N, 3), got {np.shape(points)}")
        return np.einsum("bij,bnj->bni", self.R, p, dtype=np.float32) + self.T[:, None, :]

    def project(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Project world points. Returns ``uv`` (B, N, 2) pixel coordinates (pixel-centre
        convention) and ``depth`` (B, N) planar depth. Points at depth <= 0 get NaN pixels."""
        pc = self.world_to_camera(points)
        z = pc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(z > 0, 1.0 / z, np.nan).astype(np.float32)
        uv = pc[..., :2] * inv[..., None] * self.focal_length[:, None, :] + self.principal_point[:, None, :]
        return uv.astype(np.float32), z

    def gl_projection(self, znear, zfar) -> np.ndarray:
        """(B, 4, 4) matrices taking camera-frame points (OpenCV axes) to OpenGL clip space.

        ``znear``/``zfar`` are scalars or (B,) arrays (planar depth, metres). With the
        viewport set to the whole (W, H) framebuffer:
        - x_ndc = (2u + 1) / W - 1: column u (pixel-centre convention) lands on window column u;
        - y_ndc = (2v + 1) / H - 1: image row v lands on *window row v*, counted from the
          bottom as OpenGL does. The framebuffer therefore holds the image top row first, so
          pixels read back with glReadPixels are already in image order (no flip). The image
          is mirrored with respect to OpenGL's usual orientation, which swaps the apparent
          winding of triangles: do not rely on GL face culling with these matrices;
        - depth: OpenGL's usual hyperbolic mapping of planar depth [znear, zfar] to [-1, 1];
        - w_clip = planar depth.
        """
        B = len(self)
        H, W = self.image_size
        n = np.broadcast_to(np.asarray(znear, dtype=np.float64), (B,))
        f = np.broadcast_to(np.asarray(zfar, dtype=np.float64), (B,))
        if np.any(n <= 0) or np.any(f <= n):
            raise ValueError("gl_projection needs 0 < znear < zfar")
        fx, fy = self.focal_length[:, 0].astype(np.float64), self.focal_length[:, 1].astype(np.float64)
        cx, cy = self.principal_point[:, 0].astype(np.float64), self.principal_point[:, 1].astype(np.float64)
        P = np.zeros((B, 4, 4), dtype=np.float64)
        P[:, 0, 0] = 2.0 * fx / W
        P[:, 0, 2] = (2.0 * cx + 1.0) / W - 1.0
        P[:, 1, 1] = 2.0 * fy / H
        P[:, 1, 2] = (2.0 * cy + 1.0) / H - 1.0
        P[:, 2, 2] = (f + n) / (f - n)
        P[:, 2, 3] = -2.0 * f * n / (f - n)
        P[:, 3, 2] = 1.0
        return P.astype(np.float32)
