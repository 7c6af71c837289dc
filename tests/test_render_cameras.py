"""Camera conventions: pinhole projection, Champ intrinsics, the OpenGL projection matrix."""
import numpy as np
import pytest

from render.cameras import CHAMP_FOCAL_SCALE, PerspectiveCameras, champ_focal


def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def test_project_matches_analytic_pinhole():
    rng = np.random.default_rng(0)
    R = np.stack([rotation(rng.normal(size=3), a) for a in (0.3, -1.1)])
    T = np.array([[0.1, -0.2, 3.0], [0.0, 0.5, 6.0]])
    cams = PerspectiveCameras(R, T, focal_length=[[500.0, 520.0], [800.0, 800.0]], image_size=(240, 320),
                              principal_point=[[150.0, 110.0], [159.5, 119.5]])
    points = rng.normal(size=(2, 50, 3)) * 0.5
    uv, depth = cams.project(points)
    for b in range(2):
        pc = points[b] @ R[b].T + T[b]
        fx, fy = cams.focal_length[b]
        cx, cy = cams.principal_point[b]
        np.testing.assert_allclose(uv[b, :, 0], fx * pc[:, 0] / pc[:, 2] + cx, atol=1e-3)
        np.testing.assert_allclose(uv[b, :, 1], fy * pc[:, 1] / pc[:, 2] + cy, atol=1e-3)
        np.testing.assert_allclose(depth[b], pc[:, 2], rtol=1e-5)


def test_points_behind_the_camera_have_no_pixel():
    cams = PerspectiveCameras(np.eye(3), np.zeros(3), 100.0, (10, 10))
    uv, depth = cams.project(np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 2.0]]))
    assert np.all(np.isnan(uv[0, 0])) and depth[0, 0] == -1.0
    np.testing.assert_allclose(uv[0, 1], [4.5, 4.5])


def test_default_principal_point_is_the_image_centre():
    cams = PerspectiveCameras(np.eye(3), np.zeros(3), 100.0, (480, 640))
    np.testing.assert_allclose(cams.principal_point[0], [319.5, 239.5])  # pixel centres at integers
    uv, _ = cams.project(np.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(uv[0, 0], [319.5, 239.5])


def test_champ_focal_and_camera():
    assert champ_focal(512, 512) == pytest.approx(10000.0)
    assert champ_focal(720, 1280) == pytest.approx(5000 / 256 * 1280)
    assert champ_focal(100, 50, scale=2.0) == 200.0
    cams = PerspectiveCameras.champ((720, 1280), T=(0.1, 0.2, 30.0))
    np.testing.assert_allclose(cams.focal_length[0], [CHAMP_FOCAL_SCALE * 1280] * 2)
    np.testing.assert_allclose(cams.principal_point[0], [639.5, 359.5])
    np.testing.assert_allclose(cams.world_to_camera(np.zeros((1, 3)))[0, 0], [0.1, 0.2, 30.0], rtol=1e-6)


def test_gl_projection_maps_pixel_centres_and_depth_range():
    rng = np.random.default_rng(1)
    H, W = 48, 64
    cams = PerspectiveCameras(np.eye(3), np.zeros(3), [[70.0, 60.0]], (H, W), principal_point=[[30.0, 20.0]])
    P = cams.gl_projection(1.0, 10.0)[0].astype(np.float64)
    points = np.concatenate([rng.uniform(-1, 1, (20, 2)), rng.uniform(1, 10, (20, 1))], axis=1)
    uv, _ = cams.project(points)
    clip = np.concatenate([points, np.ones((20, 1))], axis=1) @ P.T
    ndc = clip[:, :3] / clip[:, 3:]
    np.testing.assert_allclose(clip[:, 3], points[:, 2])
    # window coordinate of pixel centre u is u + 0.5; image row v is window row v
    np.testing.assert_allclose((ndc[:, 0] + 1) / 2 * W - 0.5, uv[0, :, 0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose((ndc[:, 1] + 1) / 2 * H - 0.5, uv[0, :, 1], rtol=1e-5, atol=1e-4)
    near_far = np.array([[0, 0, 1.0, 1.0], [0, 0, 10.0, 1.0]]) @ P.T
    np.testing.assert_allclose(near_far[:, 2] / near_far[:, 3], [-1.0, 1.0], atol=1e-6)


def test_batching_broadcast_and_indexing():
    cams = PerspectiveCameras(np.eye(3), [[0, 0, 1.0], [0, 0, 2.0], [0, 0, 3.0]], 50.0, (20, 30))
    assert len(cams) == 3 and cams.R.shape == (3, 3, 3) and cams.focal_length.shape == (3, 2)
    sub = cams[1:]
    assert len(sub) == 2 and sub.T[0, 2] == 2.0
    assert len(cams[np.array([0, 0, 2, 2])]) == 4
    uv, depth = cams.project(np.zeros((1, 3)))  # one point set for every camera
    np.testing.assert_allclose(depth[:, 0], [1, 2, 3])


@pytest.mark.parametrize("kwargs, message", [
    (dict(R=np.eye(2)), "R"),
    (dict(T=[[0, 0, 1.0]] * 2, focal_length=[[1.0, 1.0]] * 3), "batch size"),
    (dict(focal_length=-5.0), "positive"),
    (dict(image_size=(0, 10)), "image_size"),
    (dict(T=[np.nan, 0, 0]), "NaN"),
])
def test_bad_cameras_are_rejected(kwargs, message):
    args = dict(R=np.eye(3), T=np.zeros(3), focal_length=10.0, image_size=(10, 10))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        PerspectiveCameras(**args)
