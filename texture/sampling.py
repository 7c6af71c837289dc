"""Bilinear lookups: in images (pixel coordinates) and in textures (uv).

Coordinates follow :mod:`render.cameras` for images and :mod:`texture.atlas` for textures:
integer coordinates are pixel / texel centres; lookups outside the image clamp to its
border (the edge pixel's value extends outward). Values are returned as float32; a uint8
image or texture is read as ``value / 255`` so that results are always in [0, 1].
"""
from __future__ import annotations

import numpy as np

from texture.atlas import uv_to_texel


def sample_bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(..., C) float32 values of ``image`` (H, W, C), uint8 or float, at continuous
    (rows, cols) (...), bilinearly interpolated between the four nearest pixel centres and
    clamped at the border; uint8 values are divided by 255."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image: expected (H, W, C) with H, W >= 2, got shape {image.shape}")
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image: expected uint8 or float values, got {image.dtype}")
    H, W = image.shape[:2]
    rows = np.clip(np.asarray(rows, dtype=np.float32), 0.0, H - 1)
    cols = np.clip(np.asarray(cols, dtype=np.float32), 0.0, W - 1)
    r0 = np.minimum(rows.astype(np.int64), H - 2)
    c0 = np.minimum(cols.astype(np.int64), W - 2)
    fr = (rows - r0)[..., None]
    fc = (cols - c0)[..., None]
    flat = image.reshape(H * W, -1)
    index = r0 * W + c0
    corner = lambda offset: flat[index + offset].astype(np.float32)
    top_left, top_right = corner(0), corner(1)
    bottom_left, bottom_right = corner(W), corner(W + 1)
    top = top_left + (top_right - top_left) * fc
    bottom = bottom_left + (bottom_right - bottom_left) * fc
    values = top + (bottom - top) * fr
    return values * np.float32(1.0 / 255.0) if image.dtype == np.uint8 else values


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(..., 3) float32 colours in [0, 1] of ``texture`` (A, A, 3) at ``uv`` (..., 2)
    (the :mod:`texture.atlas` convention: texel (r, c) centre at ((c + 0.5) / A, 1 - (r + 0.5) / A))."""
    texture = np.asarray(texture)
    if texture.ndim != 3 or texture.shape[0] != texture.shape[1]:
        raise ValueError(f"texture: expected a square (A, A, C) image, got shape {texture.shape}")
    rows, cols = uv_to_texel(uv, texture.shape[0])
    return sample_bilinear(texture, rows, cols)
