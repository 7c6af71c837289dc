"""Mesh geometry the texture code needs: vertex normals and rasterised views.

Meshes are (V, 3) vertices in a camera frame (:mod:`render.cameras`: OpenCV axes,
metres) with (F, 3) triangles wound counter-clockwise seen from outside.
"""
from __future__ import annotations

import numpy as np

from render.cameras import PerspectiveCameras


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float32 unit vertex normals: area-weighted sums of the adjacent triangles'
    winding normals (outward for counter-clockwise triangles)."""
    v = np.asarray(vertices, dtype=np.float64)
    face_normals = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    corners = faces.reshape(-1)
    weights = np.repeat(face_normals, 3, axis=0)
    normals = np.stack([np.bincount(corners, weights[:, k], minlength=len(v)) for k in range(3)], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.where(length > 0, length, 1.0)).astype(np.float32)


def rasterise(vertices: np.ndarray, faces: np.ndarray, cameras: PerspectiveCameras):
    """:class:`render.rasterizer.Fragments` of one mesh seen by one camera."""
    from render.rasterizer import MeshRasterizer

    rasterizer = MeshRasterizer(faces, cameras.image_size, frames_per_pass=1)
    return rasterizer(np.asarray(vertices, np.float32)[None], cameras)
