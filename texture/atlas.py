"""The body's UV atlas rasterised into texels: the texel <-> surface correspondence.

Texture conventions (owned here, used by the whole ``texture`` package):

* A texture is a square image of ``A x A`` texels, ``A`` a power of two, stored as numpy
  float32 ``(A, A, 3)`` RGB in [0, 1] or uint8 ``(A, A, 3)`` RGB.
* Row 0 of the image is the top of the UV square, ``v = 1`` (the body model's ``uv_coords``
  have v pointing up). The centre of texel ``(r, c)`` is
  ``uv = ((c + 0.5) / A, 1 - (r + 0.5) / A)``; conversely ``uv`` lies at the continuous
  texel coordinates ``column = u * A - 0.5``, ``row = (1 - v) * A - 0.5`` (integer
  coordinates are texel centres, as :mod:`render.cameras` has it for pixels).
* A texel belongs to the atlas (is *inside an island*) when its centre lies inside a UV
  triangle. Its surface point on any posed mesh is the barycentric combination of that
  triangle's three mesh vertices, with the barycentrics of the texel centre in the UV
  triangle (texture mapping is affine per triangle, so this is what a renderer
  interpolating per-corner UVs samples).
* Texels inside islands are also listed compactly, in row-major order: arrays indexed by
  ``n in [0, N)`` (``texels``, ``faces``, ``bary``, ``islands``, ``mirror``) describe texel
  ``texels[n]`` (a flat index ``r * A + c``).

Islands are the connected pieces of the UV layout (triangles sharing a UV vertex). A
colour may only travel inside an island in UV space: two islands meet on the surface
along seams, not in the image.

The mirror map pairs each texel with the texel at its left/right mirror image on the
surface: the rest-pose mesh (``body.zero_params``, facing the camera, the person's left at
+x, the sagittal plane x = 0) is reflected through x -> -x and each reflected texel point is
matched to the nearest texel point (a KD-tree over the texels' rest-pose surface points).

The front map pairs each texel on the back of the rest-pose body (its normal facing away
from the camera) with the texel seen in front of it along the camera's viewing direction:
the back of a garment, a leg or an arm takes the colour of its front when nothing better
is known. Head texels neither have nor are front partners (a face belongs on no back).

A texel is *exposed* when some camera outside the rest-pose body can see it (depth test
from 26 directions around it); the inside of the mouth and most of each eyeball are not,
so no footage can ever colour them. Coverage of a texture is counted over exposed texels.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from champ3d.errors import Champ3dInputError
from champ3d.io.atomic import atomic_write_path
from render.cameras import PerspectiveCameras
from render.palette import PART_NAMES
from texture.geometry import rasterise, vertex_normals

#: Version of the cached atlas layout; bump when the arrays or their meaning change.
CACHE_VERSION = 3

#: Texels whose rest-pose normal has a z component above this face away from the camera.
BACK_FACING_NORMAL_Z = 0.2

#: Resolution and distance (metres) of the near-orthographic front view of the rest pose.
FRONT_VIEW_SIZE = 1024
FRONT_VIEW_DISTANCE = 100.0

#: Resolution of the views that decide which texels are exposed, and their depth tolerance (metres).
EXPOSURE_VIEW_SIZE = 512
EXPOSURE_DEPTH_TOLERANCE = 0.01


def default_cache_dir() -> Path:
    """``$CHAMP3D_CACHE_DIR/texture_atlas``, default ``~/.cache/champ3d/texture_atlas``."""
    root = os.environ.get("CHAMP3D_CACHE_DIR", Path.home() / ".cache" / "champ3d")
    return Path(root) / "texture_atlas"


def texel_centre_uv(rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """(..., 2) float64 uv of the centres of texels (rows, cols) in an atlas of ``size``."""
    rows = np.asarray(rows, dtype=np.float64)
    cols = np.asarray(cols, dtype=np.float64)
    return np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], axis=-1)


def uv_to_texel(uv: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous texel coordinates ``(rows, cols)`` of ``uv`` (..., 2); integers are centres."""
    uv = np.asarray(uv, dtype=np.float32)
    return (1.0 - uv[..., 1]) * size - 0.5, uv[..., 0] * size - 0.5


def check_atlas_size(size) -> int:
    """``size`` as an int, or :class:`Champ3dInputError` naming ``atlas_size``."""
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
        raise Champ3dInputError("atlas_size", f"must be an integer power of two, got {size!r}")
    size = int(size)
    if size < 16 or size > 8192 or size & (size - 1):
        raise Champ3dInputError("atlas_size", f"must be a power of two between 16 and 8192, got {size}")
    return size


@dataclass(frozen=True, eq=False)
class UVAtlas:
    """A body's UV layout rasterised at ``size x size`` texels (see the module docstring).

    Attributes:
        size: ``A``.
        mesh_faces: (F, 3) int64 mesh vertex indices of the body's triangles.
        texels: (N,) int64 flat indices ``r * A + c`` of the texels inside islands.
        faces: (N,) int32 triangle of each texel.
        bary: (N, 3) float32 barycentrics of each texel centre in its triangle (sum 1).
        islands: (N,) int32 island of each texel, ``0 .. num_islands - 1``.
        mirror: (N,) int64 position (in these compact arrays) of each texel's mirror texel.
        front: (N,) int64 position of the texel in front of each back-facing texel, -1 for
            texels without one.
        exposed: (N,) bool, True for texels some outside camera can see.
        rest_points: (N, 3) float32 each texel's surface point on the rest-pose mesh,
            body frame of ``body.zero_params`` (metres).
    """

    size: int
    mesh_faces: np.ndarray
    texels: np.ndarray
    faces: np.ndarray
    bary: np.ndarray
    islands: np.ndarray
    mirror: np.ndarray
    front: np.ndarray
    exposed: np.ndarray
    rest_points: np.ndarray

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_body(cls, body, size: int, *, cache: bool = True,
                  cache_dir: Optional[os.PathLike | str] = None) -> "UVAtlas":
        """Rasterise ``body``'s UV layout at ``size`` texels (a power of two).

        The build (seconds: about 4 at 256 texels, 10 at 1024 on two cores) is cached,
        unless ``cache`` is False, under ``cache_dir`` (default :func:`default_cache_dir`),
        keyed by a hash of the layout, the rest-pose mesh and ``size``; an unreadable cache
        file is rebuilt.
        """
        size = check_atlas_size(size)
        with torch.no_grad():
            rest = body(body.zero_params(1)).vertices[0].detach().cpu().numpy().astype(np.float64)
        mesh_faces = body.faces.detach().cpu().numpy().astype(np.int64)
        uv_coords = body.uv_coords.detach().cpu().numpy().astype(np.float64)
        face_uv = body.face_uv_indices.detach().cpu().numpy().astype(np.int64)
        head_faces = body.face_parts.detach().cpu().numpy() == PART_NAMES.index("head")
        inputs = (size, mesh_faces, uv_coords, face_uv, rest, head_faces)
        if not cache:
            return cls._build(*inputs)
        key = hashlib.sha1()
        for array in (mesh_faces, uv_coords, face_uv, rest.astype(np.float32), head_faces):
            key.update(np.ascontiguousarray(array).tobytes())
        key.update(f"{size}-{CACHE_VERSION}".encode())
        path = Path(cache_dir or default_cache_dir()) / f"atlas_{size}_{key.hexdigest()[:16]}.npz"
        if path.is_file():
            try:
                return cls.load(path)
            except Champ3dInputError:
                pass  # rebuilt and replaced below
        atlas = cls._build(*inputs)
        atlas.save(path)
        return atlas

    @classmethod
    def _build(cls, size: int, mesh_faces: np.ndarray, uv_coords: np.ndarray, face_uv: np.ndarray,
               rest: np.ndarray, head_faces: np.ndarray) -> "UVAtlas":
        face_map = rasterise_uv_layout(uv_coords, face_uv, size)
        texels = np.flatnonzero(face_map.reshape(-1) >= 0)
        faces = face_map.reshape(-1)[texels]
        rows, cols = np.divmod(texels, size)
        bary = uv_barycentrics(texel_centre_uv(rows, cols, size), uv_coords[face_uv[faces]])
        islands = uv_islands(face_uv, len(uv_coords))[faces]
        rest_points = np.einsum("nk,nkj->nj", bary, rest[mesh_faces[faces]])
        tree = cKDTree(rest_points)
        _, mirror = tree.query(rest_points * np.array([-1.0, 1.0, 1.0]), workers=-1)
        rest_normals = np.einsum("nk,nkj->nj", bary, vertex_normals(rest, mesh_faces)[mesh_faces[faces]])
        front = front_partners(rest, mesh_faces, rest_points, rest_normals, tree)
        exposed = exposure(rest, mesh_faces, rest_points, rest_normals)
        head = head_faces[faces]
        partnered = np.flatnonzero(front >= 0)
        front[partnered[head[partnered] | head[front[partnered]]]] = -1
        return cls(
            size=size, mesh_faces=mesh_faces, texels=texels.astype(np.int64), faces=faces.astype(np.int32),
            bary=bary.astype(np.float32), islands=islands.astype(np.int32), mirror=mirror.astype(np.int64),
            front=front, exposed=exposed, rest_points=rest_points.astype(np.float32),
        )

    # -- persistence (plain arrays, loaded without pickle) --------------------------------
    def save(self, path: os.PathLike | str) -> None:
        """Write the atlas as an ``.npz`` of plain arrays (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        with atomic_write_path(path, overwrite=True) as temp:
            with open(temp, "wb") as stream:
                np.savez(stream, **arrays)

    @classmethod
    def load(cls, path: os.PathLike | str) -> "UVAtlas":
        try:
            with np.load(path, allow_pickle=False) as data:
                values = {f.name: data[f.name] for f in fields(cls)}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            raise Champ3dInputError(path, f"not a readable texture atlas ({error})") from error
        values["size"] = int(values["size"])
        return cls(**values)

    # -- derived views -------------------------------------------------------------------
    @property
    def num_texels(self) -> int:
        return len(self.texels)

    @property
    def num_islands(self) -> int:
        return int(self.islands.max()) + 1

    @property
    def island_map(self) -> np.ndarray:
        """(A, A) int32 island of every texel, -1 outside islands."""
        return self.scatter(self.islands, fill=-1)

    @property
    def island_mask(self) -> np.ndarray:
        """(A, A) bool, True inside islands."""
        mask = np.zeros(self.size * self.size, bool)
        mask[self.texels] = True
        return mask.reshape(self.size, self.size)

    def scatter(self, values: np.ndarray, fill=0) -> np.ndarray:
        """Per-texel ``values`` (N, ...) as an (A, A, ...) image, ``fill`` outside islands."""
        values = np.asarray(values)
        image = np.full((self.size * self.size,) + values.shape[1:], fill, dtype=values.dtype)
        image[self.texels] = values
        return image.reshape((self.size, self.size) + values.shape[1:])

    def gather(self, image: np.ndarray) -> np.ndarray:
        """The texels inside islands of an (A, A, ...) image, as (N, ...)."""
        image = np.asarray(image)
        return image.reshape((self.size * self.size,) + image.shape[2:])[self.texels]

    @cached_property
    def interpolation(self) -> csr_matrix:
        """(N, V) sparse matrix of each texel's barycentric weights on the mesh vertices."""
        num_vertices = int(self.mesh_faces.max()) + 1
        return csr_matrix(
            (self.bary.reshape(-1), self.mesh_faces[self.faces].reshape(-1),
             np.arange(0, 3 * self.num_texels + 1, 3)),
            shape=(self.num_texels, num_vertices),
        )

    def interpolate(self, vertex_values: np.ndarray) -> np.ndarray:
        """(N, C) float32 per-vertex values (V, C) interpolated at every texel, e.g. the
        texels' surface points on a posed mesh from its vertices (V, 3)."""
        return np.asarray(self.interpolation @ np.asarray(vertex_values, dtype=np.float32), dtype=np.float32)


def rasterise_uv_layout(uv_coords: np.ndarray, face_uv: np.ndarray, size: int) -> np.ndarray:
    """(A, A) int32 triangle whose UV footprint covers each texel centre, -1 elsewhere.

    The layout is drawn as a flat mesh at depth 1 through a pinhole camera with focal
    length ``A`` that maps uv onto texel coordinates (see the module docstring).
    """
    points = np.stack([uv_coords[:, 0], -uv_coords[:, 1], np.ones(len(uv_coords))], axis=1).astype(np.float32)
    camera = PerspectiveCameras(np.eye(3), np.zeros(3), (size, size), (size, size),
                                principal_point=(-0.5, size - 0.5))
    return rasterise(points, face_uv, camera).pix_to_face[0]


def look_from(direction: np.ndarray, centre: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R, T)`` of a camera ``distance`` away from ``centre`` along
    ``direction`` (unit), looking at ``centre`` (OpenCV axes)."""
    forward = -direction
    helper = np.array([0.0, 1.0, 0.0]) if abs(forward[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    right = np.cross(helper, forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return rotation, np.array([0.0, 0.0, distance]) - rotation @ centre


def nearest_pixels(camera: PerspectiveCameras, points: np.ndarray, size: int):
    """Rows, columns (int64, clipped to the ``size``-pixel square image) of the pixels
    nearest to ``points`` (N, 3) seen by ``camera``, and their (N,) depths."""
    uv, depth = camera.project(points[None])
    rows = np.clip(np.rint(uv[0, :, 1]).astype(np.int64), 0, size - 1)
    cols = np.clip(np.rint(uv[0, :, 0]).astype(np.int64), 0, size - 1)
    return rows, cols, depth[0]


def exposure(rest: np.ndarray, mesh_faces: np.ndarray, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N,) bool: texel points that pass the depth test, facing the camera, in at least one of
    26 near-orthographic views of the rest-pose mesh (from the cube's faces, edges, corners)."""
    centre = 0.5 * (rest.min(axis=0) + rest.max(axis=0))
    radius = float(np.linalg.norm(rest - centre, axis=1).max())
    size = EXPOSURE_VIEW_SIZE
    focal = size * FRONT_VIEW_DISTANCE / (2.2 * radius)
    offsets = np.stack(np.meshgrid(*[[-1.0, 0.0, 1.0]] * 3, indexing="ij"), -1).reshape(-1, 3)
    directions = offsets[np.any(offsets != 0, axis=1)]
    exposed = np.zeros(len(points), bool)
    for direction in directions / np.linalg.norm(directions, axis=1, keepdims=True):
        rotation, translation = look_from(direction, centre, FRONT_VIEW_DISTANCE)
        camera = PerspectiveCameras(rotation, translation, focal, (size, size))
        zbuf = rasterise(rest, mesh_faces, camera).zbuf[0]
        rows, cols, depth = nearest_pixels(camera, points, size)
        drawn = zbuf[rows, cols]
        facing = normals @ rotation[2] < 0
        exposed |= facing & (drawn > 0) & (depth <= drawn + EXPOSURE_DEPTH_TOLERANCE)
    return exposed


def front_partners(rest: np.ndarray, mesh_faces: np.ndarray, points: np.ndarray, normals: np.ndarray,
                   tree: cKDTree) -> np.ndarray:
    """(N,) int64 index of the texel in front of each back-facing texel point, -1 elsewhere.

    The rest-pose mesh (facing the camera, -z) is drawn from far away, so that viewing rays
    are nearly parallel to z; a back-facing texel point looks up the front-most surface point
    at its pixel and takes the texel nearest to it (``tree`` holds the texel points).
    """
    centre = 0.5 * (rest.min(axis=0) + rest.max(axis=0))
    extent = 1.05 * float(np.max(rest.max(axis=0)[:2] - rest.min(axis=0)[:2]))
    offset = np.array([-centre[0], -centre[1], FRONT_VIEW_DISTANCE - centre[2]])
    size = FRONT_VIEW_SIZE
    focal = size * FRONT_VIEW_DISTANCE / extent
    camera = PerspectiveCameras(np.eye(3), np.zeros(3), focal, (size, size))
    fragments = rasterise(rest + offset, mesh_faces, camera)
    pixel_r, pixel_c, depth = nearest_pixels(camera, points + offset, size)
    face = fragments.pix_to_face[0, pixel_r, pixel_c]
    behind = fragments.zbuf[0, pixel_r, pixel_c] < depth - 0.01
    candidates = np.flatnonzero((normals[:, 2] > BACK_FACING_NORMAL_Z) & (face >= 0) & behind)
    bary = fragments.bary_coords[0, pixel_r[candidates], pixel_c[candidates]].astype(np.float64)
    front_points = np.einsum("nk,nkj->nj", bary, rest[mesh_faces[face[candidates]]])
    partners = np.full(len(points), -1, np.int64)
    partners[candidates] = tree.query(front_points, workers=-1)[1]
    return partners


def uv_barycentrics(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(N, 3) barycentrics of 2D ``points`` (N, 2) in ``triangles`` (N, 3, 2), clipped to the
    triangle (texel centres on an edge may land a rounding error outside) and summing to 1."""
    a = triangles[:, 0]
    e1, e2, p = triangles[:, 1] - a, triangles[:, 2] - a, points - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    det = np.where(np.abs(det) > 1e-300, det, 1e-300)
    b1 = (p[:, 0] * e2[:, 1] - p[:, 1] * e2[:, 0]) / det
    b2 = (e1[:, 0] * p[:, 1] - e1[:, 1] * p[:, 0]) / det
    bary = np.clip(np.stack([1.0 - b1 - b2, b1, b2], axis=1), 0.0, 1.0)
    return bary / bary.sum(axis=1, keepdims=True)


def uv_islands(face_uv: np.ndarray, num_uv: int) -> np.ndarray:
    """(F,) island of each triangle: connected components of triangles sharing a UV vertex,
    numbered by decreasing size (island 0 is the largest)."""
    num_faces = len(face_uv)
    incidence = coo_matrix(
        (np.ones(face_uv.size), (np.repeat(np.arange(num_faces), 3), face_uv.reshape(-1))),
        shape=(num_faces, num_uv),
    ).tocsr()
    _, labels = connected_components(incidence @ incidence.T, directed=False)
    order = np.argsort(-np.bincount(labels), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[labels]
