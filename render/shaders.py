"""Map shaders: Champ's guidance maps from the rasteriser's fragments.

Encodings (uint8):

* **depth** (H, W): ``255 * (1 - (z - z_min) / (z_max - z_min))`` rounded to the nearest
  level (ties to even), with ``z`` the planar camera depth at the pixel centre and
  ``z_min``/``z_max`` the nearest and farthest depths over the visible foreground *of that
  frame*: the nearest point is 255, the farthest 0, the background 0. A frame whose
  foreground has a single depth is 255 on it. Computed in float32 as
  ``(z_max - z) * (255 / (z_max - z_min))``.
* **normal** (H, W, 3) RGB: ``floor(255 * (0.5 + 0.5 * m) + 0.5)`` per channel (round half up)
  with ``m`` the unit interpolated vertex normal in the OpenGL camera convention, x right,
  y up, z toward the camera, i.e. ``m = (n_x, -n_y, -n_z)`` for the OpenCV-frame normal ``n``.
  A camera-facing surface is (128, 128, 255). A triangle seen from behind (through a hole,
  or a mesh with inward winding) has its normal flipped toward the camera first, as
  Blender's Cycles does. Background black.
* **semantic** (H, W, 3) RGB: the palette colour (:data:`render.palette.SEMANTIC_PALETTE`)
  of the part label of the triangle covering the pixel centre. Labels are per triangle and
  never interpolated, so every foreground pixel is an exact palette colour. Background
  black. (Champ's Blender renders interpolate vertex colours and show gradients at part
  seams; the labels are the same.)
* **mask** (H, W): 255 where a triangle covers the pixel centre, else 0.

Nothing is anti-aliased: each pixel is one sample at its centre. Normal and semantic
colours are computed per fragment on the GPU; depth and mask on the CPU from the planar
depth image (a per-frame reduction the GPU would do slower).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from render.palette import NUM_PARTS, SEMANTIC_PALETTE
from render.rasterizer import FRAGMENT_GLSL, FragmentProgram, RasterPass, Target, glsl

#: The outputs of Champ's maps (render target locations 0-2) and ``write_champ_maps()``,
#: which sets them; fragment programs that add outputs of their own (at locations 3 and up)
#: call it from their ``main``.
CHAMP_MAPS_GLSL = """
layout(location = 0) out vec3 normal_rgb;
layout(location = 1) out vec3 semantic_rgb;
layout(location = 2) out float planar_depth;

float encode_unit(float x) { return floor(clamp(x, 0.0, 1.0) * 255.0 + 0.5) / 255.0; }

void write_champ_maps() {
    vec3 n = unit_normal();
    if (!gl_FrontFacing) n = -n;
    normal_rgb = vec3(encode_unit(0.5 + 0.5 * n.x), encode_unit(0.5 - 0.5 * n.y), encode_unit(0.5 - 0.5 * n.z));
    // the face tag is the face's palette colour, packed R | G << 8 | B << 16
    semantic_rgb = vec3(uvec3(face_tag, face_tag >> 8, face_tag >> 16) & 255u) / 255.0;
    planar_depth = cam_position.z;
}
"""

CHAMP_FS = FRAGMENT_GLSL + CHAMP_MAPS_GLSL + """
void main() { write_champ_maps(); }
"""

#: Champ's render targets, in ``location`` order.
CHAMP_TARGETS = (Target("normal", 3, "f1"), Target("semantic", 3, "f1"), Target("planar_depth", 1, "f4"))

#: The fragment program Champ maps are rasterised with (see :class:`ChampMapShader`).
CHAMP_PROGRAM = FragmentProgram(glsl(CHAMP_FS), CHAMP_TARGETS)


@dataclass
class ChampMaps:
    """Champ's four guidance maps for B frames (encodings: see the module docstring).

    depth: (B, H, W) uint8; normal: (B, H, W, 3) uint8 RGB; semantic: (B, H, W, 3) uint8 RGB;
    mask: (B, H, W) uint8 (0 or 255). All C-contiguous.
    """

    depth: np.ndarray
    normal: np.ndarray
    semantic: np.ndarray
    mask: np.ndarray

    @classmethod
    def empty(cls, num_frames: int, image_size: Tuple[int, int]) -> "ChampMaps":
        H, W = image_size
        return cls(
            depth=np.empty((num_frames, H, W), np.uint8),
            normal=np.empty((num_frames, H, W, 3), np.uint8),
            semantic=np.empty((num_frames, H, W, 3), np.uint8),
            mask=np.empty((num_frames, H, W), np.uint8),
        )


def encode_depth(planar_depth: np.ndarray, depth: np.ndarray, mask: np.ndarray) -> None:
    """Champ's depth and mask encodings of one frame's (H, W) float32 planar depth (0 on
    background), written into the uint8 ``depth`` and ``mask`` arrays. ``planar_depth`` is
    overwritten."""
    cv2.compare(planar_depth, 0.0, cv2.CMP_GT, dst=mask)
    z_min, z_max = cv2.minMaxLoc(planar_depth, mask)[:2]
    if z_max > z_min:
        cv2.subtract(planar_depth, z_max, dst=planar_depth)
        cv2.convertScaleAbs(planar_depth, dst=depth, alpha=255.0 / (z_max - z_min))
    else:
        depth.fill(255)
    cv2.bitwise_and(depth, mask, dst=depth)


class ChampMapShader:
    """Shades frames rasterised with :data:`CHAMP_PROGRAM` into :class:`ChampMaps`. The
    rasteriser must be built with :attr:`face_tags` (each face's packed palette colour).

    Args:
        face_labels: (F,) integer part label (0..23, :data:`render.palette.PART_NAMES`) of
            every triangle.
    """

    program = CHAMP_PROGRAM

    def __init__(self, face_labels: np.ndarray):
        labels = np.asarray(face_labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"face_labels: expected (F,) integer part labels, got {labels.dtype} {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_PARTS):
            raise ValueError(f"face_labels: part labels must lie in 0..{NUM_PARTS - 1}")
        self.face_labels = labels.astype(np.int64)
        rgb = SEMANTIC_PALETTE[self.face_labels].astype(np.uint32)
        #: (F,) uint32 palette colour of each face, packed R | G << 8 | B << 16.
        self.face_tags = rgb[:, 0] | (rgb[:, 1] << 8) | (rgb[:, 2] << 16)
        self._planar_depth = np.empty((0, 0, 0), np.float32)  # read-back scratch

    def __call__(self, raster_pass: RasterPass, out: ChampMaps) -> None:
        """Read the frames of ``raster_pass`` into ``out[raster_pass.start:raster_pass.stop]``."""
        frames = slice(raster_pass.start, raster_pass.stop)
        H, W = raster_pass.image_size
        if self._planar_depth.shape[0] < raster_pass.num_frames or self._planar_depth.shape[1:] != (H, W):
            self._planar_depth = np.empty((raster_pass.num_frames, H, W), np.float32)
        z = self._planar_depth[: raster_pass.num_frames]
        raster_pass.read_into("normal", out.normal[frames])
        raster_pass.read_into("semantic", out.semantic[frames])
        raster_pass.read_into("planar_depth", z)
        for i, frame in enumerate(range(raster_pass.start, raster_pass.stop)):
            encode_depth(z[i], out.depth[frame], out.mask[frame])
