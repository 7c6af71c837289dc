"""Multi-view colour consistency on real orbit renders of the body: a texture fixed on the body
scores near zero, view-dependent colour and misregistered views do not."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.eval import evaluate
from champ3d.eval.multiview import (GEOMETRY_FILE, load_view_geometry, multiview_l1, save_view_geometry,
                                    seen_colours)
from render.camera_paths import CameraPath
from render.cameras import PerspectiveCameras
from render.rasterizer import MeshRasterizer

VIEWS, SIZE, FOCAL = 30, 128, 150.0
BACKGROUND = 90


@pytest.fixture(scope="module")
def orbit(body):
    """The body in its rest pose 3 m in front of the reference camera, seen from 3DHM's 30
    turntable views (render.camera_paths), with a smooth colour pattern fixed on its surface."""
    params = body.zero_params(1)
    params.transl[:] = torch.tensor([0.0, 0.0, 3.0])
    with torch.no_grad():
        vertices = body(params).vertices[0].numpy()
    faces = body.faces.numpy()
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    R, T = CameraPath(type="orbit", views=VIEWS).extrinsics(centre)
    cameras = PerspectiveCameras(R, T, FOCAL, (SIZE, SIZE))
    rest = vertices - centre
    colours = 0.5 + 0.4 * np.stack([np.sin(9 * rest[:, 0] + 2 * rest[:, 1]), np.sin(7 * rest[:, 1] + 1.0),
                                    np.cos(8 * rest[:, 2] - 5 * rest[:, 1])], axis=1)
    return vertices, faces, cameras, colours


def render(vertices, faces, cameras, colours, tint=None) -> np.ndarray:
    """uint8 (V, H, W, 3) views of the vertex-coloured body on a grey background; ``tint``
    (V, 3) is added to each view's body colours (view-dependent colour)."""
    fragments = MeshRasterizer(faces, cameras.image_size)(np.broadcast_to(vertices, (len(cameras),) + vertices.shape),
                                                          cameras, corner_attributes=colours[faces])
    image = fragments.attributes + (0 if tint is None else tint[:, None, None, :])
    image = np.where(fragments.mask[..., None], image, BACKGROUND / 255.0)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def test_consistent_texture_scores_near_zero_and_tints_are_measured(orbit, tmp_path):
    vertices, faces, cameras, colours = orbit
    path = save_view_geometry(tmp_path / GEOMETRY_FILE, vertices, faces, cameras)
    geometry = load_view_geometry(path)
    np.testing.assert_array_equal(geometry.vertices[7], vertices)
    consistent = multiview_l1(render(vertices, faces, cameras, colours), geometry, "orbit")
    assert consistent.shape == (VIEWS,) and consistent.max() < 0.02, consistent

    tint = np.zeros((VIEWS, 3))
    tint[1::2] = [0.1, 0.05, -0.06]  # every other view drifts in colour by a known amount
    tinted = multiview_l1(render(vertices, faces, cameras, colours, tint), geometry, "orbit")
    np.testing.assert_allclose(tinted, 0.07, atol=0.02)

    # views drawn a few pixels off their cameras: the same body point lands on other colours
    shifted = np.roll(render(vertices, faces, cameras, colours), 3, axis=2)
    assert multiview_l1(shifted, geometry, "orbit").mean() > 3 * consistent.mean()


def test_seen_points_are_front_facing_and_cover_both_sides(orbit, tmp_path):
    vertices, faces, cameras, colours = orbit
    geometry = load_view_geometry(save_view_geometry(tmp_path / GEOMETRY_FILE, vertices, faces, cameras))
    frames = render(vertices, faces, cameras, colours)
    sampled, seen = seen_colours(frames, geometry)
    front, back = seen[0], seen[VIEWS // 2]
    assert front.sum() > 0.08 * len(vertices) and back.sum() > 0.08 * len(vertices)
    assert (front & back).sum() < 0.02 * len(vertices)  # front and back views share almost nothing
    # where a vertex is seen, the sampled colour is its own (up to interpolation across pixels)
    error = np.abs(sampled[0, front] - np.clip(np.rint(colours[front] * 255) / 255, 0, 1)).mean()
    assert error < 0.02


def test_frames_at_another_size_scale_the_cameras(orbit, tmp_path):
    vertices, faces, cameras, colours = orbit
    geometry = load_view_geometry(save_view_geometry(tmp_path / GEOMETRY_FILE, vertices, faces, cameras))
    large = PerspectiveCameras(cameras.R, cameras.T, 2 * FOCAL, (2 * SIZE, 2 * SIZE))
    values = multiview_l1(render(vertices, faces, large, colours), geometry, "orbit")
    assert values.max() < 0.02


def _write_views(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"view_{i:02d}.png")


def test_orbit_protocol_end_to_end(orbit, tmp_path):
    vertices, faces, cameras, colours = orbit
    tint = np.zeros((VIEWS, 3))
    tint[VIEWS // 2:] = 0.08
    _write_views(tmp_path / "gt" / "human", render(vertices, faces, cameras, colours))
    _write_views(tmp_path / "pred" / "human", render(vertices, faces, cameras, colours, tint))
    save_view_geometry(tmp_path / "guidance" / "human" / GEOMETRY_FILE, vertices, faces, cameras)

    plain = evaluate("orbit", tmp_path / "pred", tmp_path / "gt", tmp_path / "plain", metrics=["L1", "MultiView"])
    assert plain.summary["unavailable"]["multiview_L1"]["reason"] == "needs guidance folders"

    result = evaluate("orbit", tmp_path / "pred", tmp_path / "gt", tmp_path / "out", metrics=["L1", "MultiView"],
                      guidance_dir=tmp_path / "guidance")
    with open(result.files["per_frame"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["view_deg"]) for r in rows] == [12.0 * i for i in range(VIEWS)]
    values = np.array([float(r["multiview_L1"]) for r in rows])
    # the tint switches on between views 14 and 15 and off again between 29 and 0
    jumps = {VIEWS // 2 - 1, VIEWS - 1}
    assert all(values[v] > 0.05 for v in jumps) and all(values[v] < 0.02 for v in set(range(VIEWS)) - jumps)

    (tmp_path / "guidance" / "human" / GEOMETRY_FILE).unlink()
    with pytest.raises(Champ3dInputError, match=r"guidance/human/views.safetensors: video human: guidance "):
        evaluate("orbit", tmp_path / "pred", tmp_path / "gt", tmp_path / "out2", metrics=["MultiView"],
                 guidance_dir=tmp_path / "guidance")


def test_bad_geometry_is_refused(orbit, tmp_path):
    vertices, faces, cameras, colours = orbit
    frames = render(vertices, faces, cameras, colours)
    path = save_view_geometry(tmp_path / GEOMETRY_FILE, vertices, faces, cameras[:10])
    with pytest.raises(Champ3dInputError, match="the geometry has 10 views, the video 30 frames"):
        multiview_l1(frames, load_view_geometry(path), str(path))
    away = PerspectiveCameras(cameras.R, cameras.T + np.array([0.0, 0.0, -10.0], np.float32), FOCAL, (SIZE, SIZE))
    path = save_view_geometry(tmp_path / GEOMETRY_FILE, vertices, faces, away)
    with pytest.raises(Champ3dInputError, match="the cameras do not frame the body"):
        multiview_l1(frames, load_view_geometry(path), str(path))
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Champ3dInputError, match="unreadable view geometry"):
        load_view_geometry(tmp_path / "broken.safetensors")
