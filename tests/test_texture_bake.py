"""Baking known geometry: a photo rendered from a texture that is a known function of the
surface point is baked back, and visibility follows the geometry."""
import numpy as np
import pytest
import torch

from champ3d.fitting.camera import CameraIntrinsics
from texture.atlas import UVAtlas
from texture.bake import BakeSettings, bake_texture
from texture.geometry import rasterise, vertex_normals
from texture.preview import render_textured

SIZE = 256
CAMERA = CameraIntrinsics.centred(256, 384, focal_scale=1.3)
DISTANCE = 3.0


def surface_colour(points: np.ndarray) -> np.ndarray:
    """A smooth colour of the rest-pose surface point, symmetric in x, inside [0.1, 0.9]."""
    x, y, z = np.abs(points[:, 0]), points[:, 1], points[:, 2]
    return (0.5 + 0.4 * np.stack([np.sin(6 * y), np.cos(5 * x + 2 * y), np.sin(4 * z + 3 * x)], 1)).astype(np.float32)


def turned(vertices: np.ndarray, degrees: float) -> np.ndarray:
    """The mesh rotated about the vertical (camera y) axis through its centre."""
    a = np.radians(degrees)
    rotation = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], np.float32)
    centre = vertices.mean(axis=0)
    return (vertices - centre) @ rotation.T + centre


@pytest.fixture(scope="module")
def atlas(body, tmp_path_factory):
    return UVAtlas.from_body(body, SIZE, cache_dir=tmp_path_factory.getbasetemp() / "texture_atlas_cache")


@pytest.fixture(scope="module")
def scene(body, atlas):
    """Rest-pose body facing the camera 3 m away, and its photo rendered from the truth texture."""
    params = body.zero_params(1)
    params.transl[:] = torch.tensor([0.0, 0.0, DISTANCE])
    with torch.no_grad():
        vertices = body(params).vertices[0].numpy()
    truth = atlas.scatter(surface_colour(atlas.rest_points))
    return vertices, truth


def photo(body, vertices, truth):
    image, mask = render_textured(body, vertices[None], truth, CAMERA.to_cameras())
    return (image[0] * 255 + 0.5).astype(np.uint8), mask[0]


def test_baked_colours_are_the_surface_colours(body, atlas, scene):
    vertices, truth = scene
    image, mask = photo(body, vertices, truth)
    sample = bake_texture(image, mask, vertices, CAMERA, atlas)
    seen = sample.seen
    assert 0.25 < seen[atlas.island_mask].mean() < 0.6
    error = np.abs(sample.colour[seen] - truth[seen]).max(axis=1)
    assert np.median(error) < 0.01 and np.percentile(error, 95) < 0.04
    assert np.all(sample.colour[~seen] == 0) and np.all(sample.confidence[~atlas.island_mask] == 0)
    assert sample.confidence.max() <= 1.0 and sample.colour.dtype == np.float32


def test_back_faces_are_never_seen(body, atlas, scene):
    vertices, truth = scene
    image, mask = photo(body, vertices, truth)
    settings = BakeSettings()
    confidence = atlas.gather(bake_texture(image, mask, vertices, CAMERA, atlas, settings).confidence)
    points = atlas.interpolate(vertices)
    normals = atlas.interpolate(vertex_normals(vertices, atlas.mesh_faces))
    cos = -np.sum(normals * points, axis=1) / np.linalg.norm(normals, axis=1) / np.linalg.norm(points, axis=1)
    assert np.all(confidence[cos < settings.min_cos] == 0)
    assert np.all(confidence <= np.maximum(cos, 0) + 1e-5)

    # turned around, the camera sees what was the back, and nothing it saw before
    front_seen = confidence > 0
    behind = turned(vertices, 180)
    image, mask = photo(body, behind, truth)
    seen = atlas.gather(bake_texture(image, mask, behind, CAMERA, atlas).seen)
    assert seen.mean() > 0.2
    assert np.sum(seen & front_seen) <= 0.005 * seen.sum()
    # what it sees faced away before (but for a few side texels: the views are perspective)
    assert np.percentile(normals[seen, 2], 1) > 0


def test_occluded_surface_is_not_seen(body, atlas, scene):
    vertices, truth = scene
    side = turned(vertices, 90)
    image, mask = photo(body, side, truth)
    settings = BakeSettings()
    seen = atlas.gather(bake_texture(image, mask, side, CAMERA, atlas, settings).seen)
    points = atlas.interpolate(side)
    zbuf = rasterise(side, atlas.mesh_faces, CAMERA.to_cameras()).zbuf[0]
    rows = np.rint(CAMERA.fy * points[:, 1] / points[:, 2] + CAMERA.cy).astype(int).clip(0, CAMERA.height - 1)
    cols = np.rint(CAMERA.fx * points[:, 0] / points[:, 2] + CAMERA.cx).astype(int).clip(0, CAMERA.width - 1)
    hidden = points[:, 2] > zbuf[rows, cols] + settings.depth_tolerance + 0.01
    assert hidden.mean() > 0.4 and not np.any(seen & hidden)
    # the far arm hides behind the torso
    arms = [atlas.rest_points[:, 0] * s > 0.3 for s in (1, -1)]
    near, far = sorted(arms, key=lambda arm: points[arm, 2].mean())
    assert seen[near].mean() > 0.2 and seen[far].mean() < 0.1


def test_background_outside_the_person_mask_is_not_sampled(body, atlas, scene):
    vertices, truth = scene
    image, mask = photo(body, vertices, truth)
    half = mask.copy()
    half[:, : CAMERA.width // 2] = False
    settings = BakeSettings(mask_erosion_px=3)
    seen = atlas.gather(bake_texture(image, half, vertices, CAMERA, atlas, settings).seen)
    points = atlas.interpolate(vertices)
    columns = CAMERA.fx * points[:, 0] / points[:, 2] + CAMERA.cx
    assert seen.any() and columns[seen].min() >= CAMERA.width // 2 + 2.5


def test_bad_inputs_are_rejected(atlas, scene):
    vertices, _ = scene
    image = np.zeros((384, 256, 3), np.uint8)
    mask = np.ones((384, 256), bool)
    with pytest.raises(ValueError, match="camera"):
        bake_texture(image, mask, vertices, CAMERA.resized(128, 192), atlas)
    with pytest.raises(ValueError, match="uint8"):
        bake_texture(image.astype(np.float32), mask, vertices, CAMERA, atlas)
    with pytest.raises(ValueError, match="person_mask"):
        bake_texture(image, mask[:10], vertices, CAMERA, atlas)
    with pytest.raises(ValueError, match="vertices"):
        bake_texture(image, mask, vertices[:100], CAMERA, atlas)
