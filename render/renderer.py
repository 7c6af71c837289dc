"""Champ guidance-map renderer: a :class:`MeshRasterizer` followed by a :class:`ChampMapShader`."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from render.cameras import PerspectiveCameras
from render.rasterizer import MeshRasterizer
from render.shaders import ChampMaps, ChampMapShader


class ChampMapRenderer:
    """Renders depth, normal, semantic and mask maps of posed meshes sharing one topology.

    Args:
        faces: (F, 3) triangle vertex indices.
        face_labels: (F,) part label (0..23) of every triangle.
        image_size: (H, W).
        frames_per_pass: frames drawn per GPU pass (see :class:`MeshRasterizer`).

    Example::

        renderer = ChampMapRenderer(faces, face_labels, (512, 512))
        maps = renderer(verts, PerspectiveCameras.champ((512, 512), T=cam_t))
        maps.normal[0]  # (512, 512, 3) uint8 RGB
    """

    def __init__(self, faces: np.ndarray, face_labels: np.ndarray, image_size: Tuple[int, int],
                 frames_per_pass: int = 16):
        faces = np.asarray(faces)
        self.shader = ChampMapShader(face_labels)
        if len(self.shader.face_labels) != len(faces):
            raise ValueError(f"face_labels has {len(self.shader.face_labels)} entries for {len(faces)} faces")
        self.rasterizer = MeshRasterizer(faces, image_size, frames_per_pass, face_tags=self.shader.face_tags)

    @property
    def image_size(self) -> Tuple[int, int]:
        return self.rasterizer.image_size

    def __call__(self, verts: np.ndarray, cameras: PerspectiveCameras, out: Optional[ChampMaps] = None) -> ChampMaps:
        """Render ``verts`` (B, V, 3) world positions seen by ``cameras`` (B, or 1 for all).

        ``out``: maps of at least B frames to render into (their first B frames are
        overwritten and returned), which saves allocating new arrays for every batch."""
        B = np.shape(verts)[0]
        if out is None:
            maps = ChampMaps.empty(B, self.image_size)
        elif len(out.depth) < B or out.depth.shape[1:] != self.image_size:
            raise ValueError(f"out holds {out.depth.shape} maps; {B} frames of {self.image_size} needed")
        else:
            maps = ChampMaps(out.depth[:B], out.normal[:B], out.semantic[:B], out.mask[:B])
        for raster_pass in self.rasterizer.passes(verts, cameras, self.shader.program):
            self.shader(raster_pass, maps)
        return maps
