"""Multi-view colour consistency of orbit renders: does a body point keep its colour across views?

Geometry file (``views.safetensors``, owned here; written by :func:`save_view_geometry`):

- ``vertices``: ``(N, 3)`` world-frame body vertices shared by every view, or ``(V, N, 3)``
  one body per view (a body that moves while the camera orbits), float32, metres;
- ``faces``: ``(F, 3)`` int64 triangles of the body mesh;
- ``R`` ``(V, 3, 3)``, ``T`` ``(V, 3)``, ``focal_length`` ``(V, 2)``, ``principal_point``
  ``(V, 2)``: the view cameras, world to camera, in the conventions of
  :mod:`render.cameras` (e.g. the extrinsics of :mod:`render.camera_paths`);
- metadata ``image_size``: ``"H,W"`` of the rendered views.

View ``i`` of the geometry is frame ``i`` of the evaluated video. When the evaluated frames
have another size than ``image_size``, the intrinsics are scaled to it (pixel-centre
convention, as :meth:`champ3d.fitting.camera.CameraIntrinsics.resized`).

Definition. In view ``v`` a mesh vertex is *seen* when

1. it projects inside the image with its four bilinear-sample pixels inside the image;
2. its planar depth is within :data:`DEPTH_TOLERANCE_M` (1 cm) of the rasterised depth at
   its nearest pixel (it is the front-most surface there);
3. the rasterised surface at that pixel faces the camera: the cosine between its normal and
   the direction to the camera is at least :data:`MIN_FACING_COS` (0.5, within 60 degrees),
   so grazing views, where a pixel mixes body and background, are left out;
4. all four bilinear-sample pixels are covered by the body.

Its colour in view ``v`` is the bilinear sample of the frame at its projection, RGB on
[0, 1]. The value of view ``v`` is the mean, over the vertices seen in both ``v`` and the
next view ``w = (v + 1) mod V`` (the orbit closes, as a full turn does), of the mean over
RGB of ``|colour_v - colour_w|``. Lighting that changes with the viewing direction counts
as inconsistency too; an identical texture rendered without view-dependent shading scores
near 0 (resampling only).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from champ3d.errors import Champ3dInputError
from champ3d.io.atomic import atomic_write_path
from render.cameras import PerspectiveCameras

DEPTH_TOLERANCE_M = 0.01
MIN_FACING_COS = 0.5
MIN_SHARED_VERTICES = 50
VIEWS_PER_PASS = 8
GEOMETRY_FILE = "views.safetensors"


@dataclass
class ViewGeometry:
    vertices: np.ndarray  # (V, N, 3) float32, world frame
    faces: np.ndarray  # (F, 3) int64
    cameras: PerspectiveCameras  # V cameras

    @property
    def num_views(self) -> int:
        return len(self.cameras)

    def resized(self, height: int, width: int) -> "ViewGeometry":
        """The same views seen in frames of ``height`` x ``width`` pixels."""
        h0, w0 = self.cameras.image_size
        scale = np.array([width / w0, height / h0], np.float32)
        cameras = PerspectiveCameras(self.cameras.R, self.cameras.T, self.cameras.focal_length * scale,
                                     (height, width), (self.cameras.principal_point + 0.5) * scale - 0.5,
                                     self.cameras.znear)
        return ViewGeometry(self.vertices, self.faces, cameras)


def save_view_geometry(path: Path, vertices: np.ndarray, faces: np.ndarray, cameras: PerspectiveCameras) -> Path:
    """Write the geometry file (format in the module docstring) atomically."""
    arrays = {"vertices": vertices, "R": cameras.R, "T": cameras.T, "focal_length": cameras.focal_length,
              "principal_point": cameras.principal_point}
    tensors = {name: torch.from_numpy(np.array(value, np.float32)) for name, value in arrays.items()}
    tensors["faces"] = torch.from_numpy(np.array(faces, np.int64))
    metadata = {"image_size": ",".join(str(s) for s in cameras.image_size), "znear": json.dumps(cameras.znear)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write_path(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_view_geometry(path: Path) -> ViewGeometry:
    path = Path(path)
    if not path.is_file():
        raise Champ3dInputError(path, "view geometry file not found (the orbit's body mesh and cameras)")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        height, width = (int(v) for v in metadata["image_size"].split(","))
        znear = float(json.loads(metadata.get("znear", "0.01")))
        arrays = {k: tensors[k].numpy() for k in ("vertices", "faces", "R", "T", "focal_length", "principal_point")}
    except (OSError, ValueError, KeyError, SafetensorError) as error:
        raise Champ3dInputError(path, f"unreadable view geometry: {error}") from error
    try:
        cameras = PerspectiveCameras(arrays["R"], arrays["T"], arrays["focal_length"], (height, width),
                                     arrays["principal_point"], znear)
    except ValueError as error:
        raise Champ3dInputError(path, f"invalid view cameras: {error}") from error
    vertices = arrays["vertices"]
    if vertices.ndim == 2:
        vertices = np.broadcast_to(vertices, (len(cameras),) + vertices.shape)
    if vertices.ndim != 3 or vertices.shape[0] != len(cameras) or vertices.shape[2] != 3:
        raise Champ3dInputError(path, f"'vertices' must be (N, 3) or ({len(cameras)}, N, 3), got {vertices.shape}")
    faces = arrays["faces"]
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= vertices.shape[1]:
        raise Champ3dInputError(path, f"'faces' must be (F, 3) indices into the {vertices.shape[1]} vertices")
    return ViewGeometry(np.ascontiguousarray(vertices, np.float32), faces.astype(np.int64), cameras)


def seen_colours(frames: np.ndarray, geometry: ViewGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Per view and vertex: the sampled colour ``(V, N, 3)`` on [0, 1] and whether the vertex is
    seen ``(V, N)`` (module docstring). ``frames``: uint8 ``(V, H, W, 3)`` at the cameras' size."""
    from render.rasterizer import MeshRasterizer

    num_views, height, width = frames.shape[:3]
    rasterizer = MeshRasterizer(geometry.faces, (height, width), frames_per_pass=VIEWS_PER_PASS)
    colours = np.zeros(geometry.vertices.shape, np.float64)
    seen = np.zeros(geometry.vertices.shape[:2], bool)
    for start in range(0, num_views, VIEWS_PER_PASS):
        views = slice(start, min(start + VIEWS_PER_PASS, num_views))
        cameras = geometry.cameras[views]
        vertices = geometry.vertices[views]
        fragments = rasterizer(vertices, cameras)
        uv, depth = cameras.project(vertices)
        for b, v in enumerate(range(views.start, views.stop)):
            colours[v], seen[v] = _sample_view(frames[v], fragments.zbuf[b], fragments.normals[b],
                                               fragments.mask[b], uv[b], depth[b],
                                               cameras.world_to_camera(vertices[b])[0])
    return colours, seen


def _sample_view(frame, zbuf, normals, covered, uv, depth, camera_points):
    height, width = zbuf.shape
    u, v = uv[:, 0].astype(np.float64), uv[:, 1].astype(np.float64)
    inside = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (v >= 0) & (u < width - 1) & (v < height - 1)
    x0 = np.where(inside, np.floor(u), 0).astype(int)
    y0 = np.where(inside, np.floor(v), 0).astype(int)
    xn = np.where(inside, np.rint(u), 0).astype(int)
    yn = np.where(inside, np.rint(v), 0).astype(int)
    front = np.abs(depth - zbuf[yn, xn]) <= DEPTH_TOLERANCE_M
    to_camera = -camera_points / np.linalg.norm(camera_points, axis=1, keepdims=True)
    facing = np.einsum("ni,ni->n", normals[yn, xn], to_camera) >= MIN_FACING_COS
    on_body = covered[y0, x0] & covered[y0, x0 + 1] & covered[y0 + 1, x0] & covered[y0 + 1, x0 + 1]
    seen = inside & front & facing & on_body
    fx, fy = (u - x0)[:, None], (v - y0)[:, None]
    image = frame.astype(np.float64) / 255.0
    colour = ((1 - fx) * (1 - fy) * image[y0, x0] + fx * (1 - fy) * image[y0, x0 + 1]
              + (1 - fx) * fy * image[y0 + 1, x0] + fx * fy * image[y0 + 1, x0 + 1])
    return colour, seen


def multiview_l1(frames: np.ndarray, geometry: ViewGeometry, where: str) -> np.ndarray:
    """``(V,)`` per-view colour L1 against the next view (module docstring); ``where`` names the
    geometry in errors."""
    if len(frames) != geometry.num_views:
        raise Champ3dInputError(where, f"the geometry has {geometry.num_views} views, the video {len(frames)} frames")
    if frames.shape[1:3] != geometry.cameras.image_size:
        geometry = geometry.resized(*frames.shape[1:3])
    colours, seen = seen_colours(frames, geometry)
    values = np.empty(geometry.num_views)
    for v in range(geometry.num_views):
        w = (v + 1) % geometry.num_views
        shared = seen[v] & seen[w]
        if shared.sum() < MIN_SHARED_VERTICES:
            raise Champ3dInputError(where, f"views {v} and {w} see only {int(shared.sum())} common body points "
                                    f"(at least {MIN_SHARED_VERTICES} needed): the cameras do not frame the body")
        values[v] = np.abs(colours[v, shared] - colours[w, shared]).mean()
    return values
