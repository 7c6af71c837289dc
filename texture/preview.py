"""Render posed bodies with a texture and compare the renders with photos (for checking
bakes and fusions; no lighting).

Every pixel covered by the mesh shows the texture at the pixel's interpolated UV
(:func:`texture.sampling.sample_texture`, the :mod:`texture.atlas` convention); background
pixels are 0.
"""
from __future__ import annotations

import numpy as np

from render.cameras import PerspectiveCameras
from render.rasterizer import MeshRasterizer
from texture.sampling import sample_texture


def render_textured(body, vertices: np.ndarray, texture: np.ndarray,
                    cameras: PerspectiveCameras) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``vertices`` (B, V, 3) (world frame of ``cameras``) of ``body``'s mesh with
    ``texture`` (A, A, 3). Returns float32 (B, H, W, 3) RGB in [0, 1] and the bool (B, H, W)
    mask of covered pixels."""
    faces = body.faces.detach().cpu().numpy()
    vertices = np.asarray(vertices, np.float32)
    fragments = MeshRasterizer(faces, cameras.image_size)(
        vertices, cameras, corner_attributes=body.corner_uvs())
    mask = fragments.mask
    images = np.zeros(mask.shape + (3,), np.float32)
    images[mask] = sample_texture(texture, fragments.attributes[mask])
    return images, mask


def turned_around(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) mesh rotated 180 degrees about the vertical (camera y) axis through its centre:
    the same body seen from behind."""
    vertices = np.asarray(vertices, np.float32)
    centre = vertices.mean(axis=0)
    return (vertices - centre) * np.array([-1.0, 1.0, -1.0], np.float32) + centre


def masked_psnr(render: np.ndarray, image: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, peak 1) between a float [0, 1] ``render`` (H, W, 3) and a uint8 ``image``
    over the pixels of ``mask`` (H, W)."""
    error = render[mask] - image[mask].astype(np.float32) / 255.0
    return float(10.0 * np.log10(1.0 / max(float(np.mean(error.astype(np.float64) ** 2)), 1e-20)))
