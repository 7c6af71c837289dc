"""Camera paths: angles of each path type, the rigid-orbit extrinsics and their
conventions, spec files and shortcuts, and the errors for bad specs."""
from pathlib import Path

import numpy as np
import pytest

from champ3d.errors import Champ3dInputError
from render.camera_paths import (CameraPath, Keyframe, camera_path_from_text, catmull_rom, load_camera_path,
                                 parse_camera_path, view_extrinsics)
from render.cameras import PerspectiveCameras

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "camera_paths"
CENTRE = np.array([0.1, -0.2, 5.0])


def camera_centres(R, T):
    return -np.einsum("nji,nj->ni", R.astype(np.float64), T.astype(np.float64))


def test_the_3dhm_orbit_turns_in_12_degree_steps_around_the_centre_at_the_reference_distance():
    path = parse_camera_path({"type": "orbit", "views": 30}, "spec")
    azimuth, elevation, distance = path.angles()
    np.testing.assert_allclose(azimuth, 12.0 * np.arange(30))
    assert np.all(elevation == 0) and np.all(distance == 1)
    R, T = path.extrinsics(CENTRE)
    assert R.shape == (30, 3, 3) and T.shape == (30, 3)
    np.testing.assert_allclose(R[0], np.eye(3), atol=1e-6)
    np.testing.assert_allclose(T[0], 0, atol=1e-6)
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", R, R), np.broadcast_to(np.eye(3), (30, 3, 3)), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(R), 1, atol=1e-5)
    centres = camera_centres(R, T)
    np.testing.assert_allclose(np.linalg.norm(centres - CENTRE, axis=1), np.linalg.norm(CENTRE), rtol=1e-5)
    np.testing.assert_allclose(centres[:, 1], 0, atol=1e-5)  # the height of the reference camera
    # the body centre stays on the same pixel in every view
    cams = PerspectiveCameras(R, T, 500.0, (256, 256))
    uv, depth = cams.project(np.broadcast_to(CENTRE.astype(np.float32), (30, 1, 3)))
    np.testing.assert_allclose(uv[:, 0], np.broadcast_to(uv[0, 0], (30, 2)), atol=1e-3)
    np.testing.assert_allclose(depth[:, 0], depth[0, 0], rtol=1e-5)


def test_azimuth_and_elevation_signs():
    centre = np.array([0.0, 0.0, 4.0])
    R, T = view_extrinsics([90.0, 180.0, 0.0], [0.0, 0.0, 30.0], [1.0, 1.0, 1.0], centre=centre)
    side, back, above = camera_centres(R, T)
    np.testing.assert_allclose(side, [4.0, 0.0, 4.0], atol=1e-5)  # toward the reference camera's +x
    np.testing.assert_allclose(back, [0.0, 0.0, 8.0], atol=1e-5)
    assert above[1] < -1.9 and np.isclose(np.linalg.norm(above - centre), 4.0)  # above: -y is up
    # at 90 degrees the camera looks along -x, image right (+x_cam) pointing to world +z
    np.testing.assert_allclose(R[0][2], [-1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(R[0][0], [0, 0, 1], atol=1e-6)
    # looking down from above: the optical axis points down (+y) toward the centre
    assert R[2][2][1] > 0.4


def test_a_reference_camera_with_pose_and_distance_factor():
    rotation = view_extrinsics([20.0], [10.0], [1.0], centre=[0.3, 0.1, 3.0])[0][0]
    R0, T0 = rotation, np.array([0.2, -0.1, 0.5])
    R, T = view_extrinsics([0.0, 45.0], [0.0, 0.0], [1.0, 2.0], centre=CENTRE, R0=R0, T0=T0)
    np.testing.assert_allclose(R[0], R0, atol=1e-6)
    np.testing.assert_allclose(T[0], T0, atol=1e-6)
    reference_centre = -R0.T @ T0
    far = camera_centres(R, T)[1]
    np.testing.assert_allclose(np.linalg.norm(far - CENTRE), 2 * np.linalg.norm(reference_centre - CENTRE), rtol=1e-5)
    # the reference's up axis is the rotation axis: heights along it are kept
    up = R0.T @ [0, -1, 0]
    np.testing.assert_allclose((far - CENTRE) @ up, 2 * (reference_centre - CENTRE) @ up, atol=1e-5)


def test_open_orbit_ranges_include_both_ends_and_whole_turns_are_closed():
    assert parse_camera_path({"views": 4, "azimuth_start": 0, "azimuth_end": 90}, "s").angles()[0].tolist() == \
        [0, 30, 60, 90]
    assert parse_camera_path({"views": 4, "azimuth_start": 90, "azimuth_end": -630}, "s").angles()[0].tolist() == \
        [90, -90, -270, -450]
    assert parse_camera_path({"views": 1, "azimuth_start": 15, "azimuth_end": 50}, "s").angles()[0].tolist() == [15]


def test_swing_oscillates_about_its_centre_and_repeats():
    path = parse_camera_path({"type": "swing", "views": 8, "amplitude": 20, "azimuth_centre": 10}, "s")
    azimuth = path.angles()[0]
    np.testing.assert_allclose(azimuth, 10 + 20 * np.sin(2 * np.pi * np.arange(8) / 8))
    assert azimuth.max() == pytest.approx(30) and azimuth.min() == pytest.approx(-10)
    assert [path.view_of_frame(k) for k in (0, 7, 8, 19)] == [0, 7, 0, 3]


def test_keyframes_are_interpolated_smoothly_through_every_keyframe():
    spec = {"type": "keyframes", "views": 121, "keyframes": [
        {"azimuth": 0, "elevation": 0, "distance": 1.0, "time": 0},
        {"azimuth": 90, "elevation": 20, "distance": 2.0, "time": 40},
        {"azimuth": 200, "elevation": -10, "distance": 1.0, "time": 60},
        {"azimuth": 360, "time": 120}]}
    azimuth, elevation, distance = parse_camera_path(spec, "s").angles()
    for view, (a, e, d) in zip((0, 40, 60, 120), ((0, 0, 1), (90, 20, 2), (200, -10, 1), (360, 0, 1))):
        assert (azimuth[view], elevation[view], distance[view]) == pytest.approx((a, e, d))
    # C1: no kink at the keyframes (first differences change slowly)
    for series in (azimuth, elevation, np.log(distance)):
        steps = np.diff(series)
        assert np.abs(np.diff(steps)).max() < 0.2 * np.abs(steps).max()
    # one keyframe: a fixed camera
    still = parse_camera_path({"type": "keyframes", "views": 3, "keyframes": [{"azimuth": 30}]}, "s").angles()
    assert still[0].tolist() == [30, 30, 30]


def test_catmull_rom_reproduces_a_straight_line():
    times = np.array([0.0, 1.0, 3.0, 4.0])
    points = np.stack([2 * times + 1, -times], 1)
    at = np.linspace(0, 4, 17)
    np.testing.assert_allclose(catmull_rom(times, points, at), np.stack([2 * at + 1, -at], 1), atol=1e-12)


def test_example_files_and_shortcuts():
    paths = {p.name: load_camera_path(p) for p in sorted(CONFIGS.glob("*.yaml"))}
    assert paths["orbit_3dhm.yaml"] == CameraPath(type="orbit", views=30)
    assert paths["keyframes_fly_around.yaml"].keyframes[1] == Keyframe(60, 25, 1.1, 30)
    assert {p.type for p in paths.values()} == {"orbit", "swing", "keyframes"}
    for path in paths.values():
        R, T = path.extrinsics(CENTRE)
        assert len(R) == path.views and np.all(np.isfinite(T))
    assert camera_path_from_text("orbit:views=120,elevation=10") == CameraPath(views=120, elevation=10.0)
    assert camera_path_from_text("swing") == CameraPath(type="swing")
    assert camera_path_from_text(str(CONFIGS / "swing.yaml")) == paths["swing.yaml"]


@pytest.mark.parametrize("spec, message", [
    ({"views": 0}, "views: must be a positive integer, got 0"),
    ({"views": True}, "views: must be a positive integer"),
    ({"views": 2.5}, "views: must be a positive integer"),
    ({"azimuth": 10}, "unknown key 'azimuth' for a orbit path"),
    ({"type": "swing", "azimuth_end": 10}, "unknown key 'azimuth_end' for a swing path"),
    ({"type": "spiral"}, "type: must be one of orbit, swing, keyframes"),
    ({"elevation": "high"}, "elevation: must be a finite number"),
    ({"elevation": 95}, r"elevation: must lie in \[-90, 90\]"),
    ({"distance": 0}, "distance: must be positive"),
    ({"type": "swing", "cycles": 0}, "cycles: must be positive"),
    ({"type": "keyframes"}, "keyframes: must be a non-empty list"),
    ({"type": "keyframes", "keyframes": [{"azimuth": 0, "roll": 3}]}, r"keyframes\[0\].roll: unknown key"),
    ({"type": "keyframes", "keyframes": [{"time": 2}, {"time": 1}]}, "times must increase"),
    ({"type": "keyframes", "keyframes": [{"time": 2}, {"azimuth": 1}]}, "a time to every keyframe or to none"),
    ([1, 2], "must be a mapping"),
])
def test_bad_specs_name_the_place_and_the_key(spec, message):
    with pytest.raises(Champ3dInputError, match=message) as error:
        parse_camera_path(spec, "paths/p.yaml")
    assert error.value.where == "paths/p.yaml"


def test_bad_files_and_shortcuts(tmp_path):
    zero = tmp_path / "zero.yaml"
    zero.write_text("type: orbit\nviews: 0\n")
    with pytest.raises(Champ3dInputError, match="views") as error:
        load_camera_path(zero)
    assert error.value.where == str(zero)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("type: orbit\nview: 30\n")
    with pytest.raises(Champ3dInputError, match="unknown key 'view'"):
        camera_path_from_text(str(unknown))
    broken = tmp_path / "broken.yaml"
    broken.write_text("type: [orbit\n")
    with pytest.raises(Champ3dInputError, match="not a readable YAML file"):
        load_camera_path(broken)
    with pytest.raises(Champ3dInputError, match="not found"):
        load_camera_path(tmp_path / "missing.yaml")
    with pytest.raises(Champ3dInputError, match="TYPE:key=value") as error:
        camera_path_from_text("orbit:views")
    assert error.value.where == "--camera-path"
    with pytest.raises(Champ3dInputError, match="views: must be a positive integer"):
        camera_path_from_text("orbit:views=0")


def test_a_moving_centre_stays_on_its_pixel_in_every_view():
    centres = np.array([[0.0, 0.0, 4.0], [0.5, -0.2, 4.5], [-0.4, 0.1, 3.5]])
    R, T = view_extrinsics([0.0, 60.0, 200.0], [0.0, 15.0, -10.0], [1.0, 1.2, 0.8], centre=centres)
    cams = PerspectiveCameras(R, T, 500.0, (64, 64))
    reference = PerspectiveCameras(np.eye(3), np.zeros(3), 500.0, (64, 64))
    for k in range(3):
        seen, _ = cams[k].project(centres[k:k + 1].astype(np.float32))
        expected, _ = reference.project(centres[k:k + 1].astype(np.float32))
        np.testing.assert_allclose(seen, expected, atol=1e-3)
