"""Complete a partial texture without learned weights.

Steps, each only touching texels the previous ones left unset:

1. **Mirror**: an unseen texel takes the colour of its left/right mirror texel
   (:attr:`UVAtlas.mirror`) when that one was seen.
2. **Front to back**: an unset texel on the back of the body takes the colour of the
   texel in front of it (:attr:`UVAtlas.front`; never on the head) when that one is set. A
   garment's back then continues its front rather than a blur of everything around it.
3. **Push-pull inpainting per island**: the set texels of one island are averaged down a
   Gaussian pyramid (weights 0 elsewhere, so nothing from another island or from outside
   the atlas enters), and holes take the coarser levels' colour on the way back up. Known
   texels keep their colour exactly. An island with no set texel at all takes, per texel,
   the colour of the nearest set texel on the rest-pose surface (the UV layout says
   nothing about its neighbours there).
4. **Gutter**: texels outside islands within ``gutter`` texels (default :data:`GUTTER`) of
   one copy the nearest island texel, so that bilinear and mipmapped lookups at island
   borders never mix in unset texels.

The result is a uint8 (A, A, 3) RGB texture (the :mod:`texture.atlas` convention) with
every texel inside an island set.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from texture.atlas import UVAtlas
from texture.bake import TextureSample

#: Gutter width, texels: wide enough for the textured renderer's coarsest mipmap level
#: (:data:`render.textured.MAX_MIP_LEVEL`: 2**3 texels a side).
GUTTER = 8


def fill_texture(sample: TextureSample, atlas: UVAtlas, *, mirror: bool = True, front_to_back: bool = True,
                 gutter: int = GUTTER) -> np.ndarray:
    """Fill every island texel of ``sample`` (see the module docstring); uint8 (A, A, 3)."""
    if sample.colour.shape != (atlas.size, atlas.size, 3):
        raise ValueError(f"sample is {sample.colour.shape[:2]} texels, the atlas {atlas.size}")
    colour = atlas.gather(sample.colour).astype(np.float32)
    known = atlas.gather(sample.confidence) > 0
    if not known.any():
        raise ValueError("the texture has no seen texel to fill from")
    if mirror:
        colour, known = copy_from(atlas.mirror, colour, known)
    if front_to_back:
        colour, known = copy_from(atlas.front, colour, known)
    colour = inpaint_islands(colour, known, atlas)
    texture = atlas.scatter(colour)
    if gutter > 0:
        texture = extend_gutter(texture, atlas.island_mask, gutter)
    return (np.clip(texture, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def copy_from(partner: np.ndarray, colour: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-texel (N, 3) colours and (N,) known flags after every unknown texel copied its
    ``partner`` texel (N,) (-1: none) where that one is known."""
    take = ~known & (partner >= 0)
    take[take] = known[partner[take]]
    colour = colour.copy()
    colour[take] = colour[partner[take]]
    return colour, known | take


def inpaint_islands(colour: np.ndarray, known: np.ndarray, atlas: UVAtlas) -> np.ndarray:
    """(N, 3) colours with every unknown texel filled inside its own island."""
    colour = colour.copy()
    rows, cols = np.divmod(atlas.texels, atlas.size)
    unseen_islands = []
    for island in range(atlas.num_islands):
        members = np.flatnonzero(atlas.islands == island)
        holes = members[~known[members]]
        if len(holes) == 0:
            continue
        if not known[members].any():
            unseen_islands.append(holes)
            continue
        r, c = rows[members], cols[members]
        r0, c0 = r.min(), c.min()
        image = np.zeros((r.max() - r0 + 1, c.max() - c0 + 1, 3), np.float32)
        weight = np.zeros(image.shape[:2], np.float32)
        image[r - r0, c - c0] = colour[members]
        weight[r - r0, c - c0] = known[members]
        filled = push_pull(image, weight)
        colour[holes] = filled[rows[holes] - r0, cols[holes] - c0]
    if unseen_islands:
        holes = np.concatenate(unseen_islands)
        sources = np.flatnonzero(known)
        _, nearest = cKDTree(atlas.rest_points[sources]).query(atlas.rest_points[holes], workers=-1)
        colour[holes] = colour[sources[nearest]]
    return colour


def push_pull(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(H, W, C) ``image`` with texels of zero ``weight`` (H, W) filled from a pyramid of
    weight-normalised Gaussian averages of the texels with weight 1 (these stay as they are).
    Needs at least one texel of positive weight."""
    image = image.astype(np.float32)
    weight = weight.astype(np.float32)
    levels = [(image * weight[..., None], weight)]
    while min(levels[-1][1].shape) > 1:
        premultiplied, w = levels[-1]
        levels.append((cv2.pyrDown(premultiplied), cv2.pyrDown(w)))
    premultiplied, w = levels[-1]
    estimate = premultiplied.sum(axis=(0, 1)) / w.sum()
    estimate = np.broadcast_to(estimate, premultiplied.shape).astype(np.float32)
    for premultiplied, w in reversed(levels):
        if estimate.shape[:2] != w.shape:
            estimate = cv2.pyrUp(estimate, dstsize=(w.shape[1], w.shape[0])).reshape(premultiplied.shape)
        upsampled = estimate
        mean = premultiplied / np.maximum(w, 1e-12)[..., None]
        alpha = np.clip(4.0 * w, 0.0, 1.0)[..., None]  # a quarter-covered cell counts as known
        estimate = alpha * mean + (1.0 - alpha) * upsampled
    return estimate


def extend_gutter(texture: np.ndarray, island_mask: np.ndarray, width: int) -> np.ndarray:
    """``texture`` with texels outside ``island_mask`` within ``width`` texels of it set to
    their nearest island texel (others stay as they are)."""
    distance, (nearest_r, nearest_c) = distance_transform_edt(~island_mask, return_indices=True)
    gutter = ~island_mask & (distance <= width)
    texture = texture.copy()
    texture[gutter] = texture[nearest_r[gutter], nearest_c[gutter]]
    return texture
