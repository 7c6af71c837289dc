"""Bake one photo into the UV atlas: each visible texel takes the image colour at its
projection (the z-buffer projection of HMR2 / 3DHM, at any atlas size).

A texel is *seen* when all of these hold for its surface point on the posed mesh:

* it projects inside the image, in front of the camera;
* its depth is at most ``depth_tolerance`` behind the rendered depth at that pixel (the
  tolerance keeps texels whose pixel is drawn by a neighbouring triangle at a crack);
* the person mask, eroded by ``mask_erosion_px``, covers that pixel (the fitted mesh is
  often a little larger than the person: this keeps background off the texture);
* it faces the camera at an angle: ``cos = n . (-ray) >= min_cos``, with ``n`` the
  interpolated vertex normal and ``ray`` the unit viewing ray.

Its confidence is ``cos``, so that views seeing a texel head-on dominate a fusion; unseen
texels have colour 0 and confidence 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from champ3d.fitting.camera import CameraIntrinsics
from texture.atlas import UVAtlas
from texture.geometry import rasterise, vertex_normals
from texture.sampling import sample_bilinear


@dataclass(frozen=True)
class BakeSettings:
    depth_tolerance: float = 0.02  # metres behind the rendered depth still counted as visible
    mask_erosion_px: int = 2  # person-mask erosion radius, image pixels
    min_cos: float = 0.1  # texels seen at a grazing angle (cos below this) are dropped


@dataclass
class TextureSample:
    """A (partial) texture: ``colour`` float32 (A, A, 3) RGB in [0, 1] and ``confidence``
    float32 (A, A) in [0, 1], 0 where the texel was not seen (its colour is then 0)."""

    colour: np.ndarray
    confidence: np.ndarray

    @property
    def seen(self) -> np.ndarray:
        """(A, A) bool, True where the texel has a colour."""
        return self.confidence > 0


def eroded_mask(person_mask: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) bool ``person_mask`` eroded by a disc of ``radius`` pixels (the image border
    counts as background)."""
    mask = np.asarray(person_mask, bool).astype(np.uint8)
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask.astype(bool)


def _check_inputs(image, person_mask, vertices, camera: CameraIntrinsics, atlas: UVAtlas):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
    H, W = image.shape[:2]
    if (camera.height, camera.width) != (H, W):
        raise ValueError(f"camera is for {camera.width}x{camera.height} images, the image is {W}x{H}")
    person_mask = np.asarray(person_mask)
    if person_mask.shape != (H, W):
        raise ValueError(f"person_mask: expected shape {(H, W)}, got {person_mask.shape}")
    vertices = np.asarray(vertices, dtype=np.float32)
    num_vertices = int(atlas.mesh_faces.max()) + 1
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < num_vertices:
        raise ValueError(f"vertices: expected ({num_vertices}, 3) camera-frame points, got {vertices.shape}")
    return image, person_mask, vertices


def bake_texture(image: np.ndarray, person_mask: np.ndarray, vertices: np.ndarray, camera: CameraIntrinsics,
                 atlas: UVAtlas, settings: BakeSettings | None = None) -> TextureSample:
    """Sample ``image`` onto ``atlas`` (see the module docstring).

    Args:
        image: uint8 (H, W, 3) RGB photo.
        person_mask: bool (H, W), True on the person.
        vertices: (V, 3) posed mesh in the camera frame of ``camera`` (OpenCV axes, metres),
            e.g. ``BodyOutput.vertices[i]``.
        camera: intrinsics of ``image`` (its width and height must match).
        atlas: the body's :class:`UVAtlas`.
    """
    settings = settings or BakeSettings()
    image, person_mask, vertices = _check_inputs(image, person_mask, vertices, camera, atlas)
    H, W = image.shape[:2]
    points = atlas.interpolate(vertices)
    normals = atlas.interpolate(vertex_normals(vertices, atlas.mesh_faces))

    z = points[:, 2]
    in_front = z > 1e-6
    safe_z = np.where(in_front, z, 1.0)
    cols = camera.fx * points[:, 0] / safe_z + camera.cx
    rows = camera.fy * points[:, 1] / safe_z + camera.cy
    pixel_r = np.rint(rows).astype(np.int64)
    pixel_c = np.rint(cols).astype(np.int64)
    inside = in_front & (pixel_r >= 0) & (pixel_r < H) & (pixel_c >= 0) & (pixel_c < W)
    pixel = np.where(inside, pixel_r * W + pixel_c, 0)

    depth = rasterise(vertices, atlas.mesh_faces, camera.to_cameras()).zbuf[0].reshape(-1)[pixel]
    unoccluded = (depth > 0) & (z <= depth + settings.depth_tolerance)

    dot = lambda a, b: np.einsum("nj,nj->n", a, b)
    cos = -dot(normals, points) / np.sqrt(dot(normals, normals) * dot(points, points)).clip(min=1e-12)
    facing = cos >= settings.min_cos

    on_person = eroded_mask(person_mask, settings.mask_erosion_px).reshape(-1)[pixel]
    confidence = np.where(inside & unoccluded & facing & on_person, cos, 0.0).astype(np.float32)
    seen = confidence > 0
    colour = np.zeros((atlas.num_texels, 3), np.float32)
    colour[seen] = sample_bilinear(image, rows[seen], cols[seen])
    return TextureSample(atlas.scatter(colour), atlas.scatter(confidence))
