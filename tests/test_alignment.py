"""Shape alignment invariants: frame 0 stands on the reference person, the driver's motion
relative to its first frame is kept, the options do what they say."""
from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from champ3d.alignment import AlignSettings, align, body_height, torso_frame
from champ3d.body.anny_body import BODY_JOINTS
from champ3d.body.keypoints import keypoint_index
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFit

TORSO = [keypoint_index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
FRAMES = 5


def make_fit(params, camera):
    return BodyFit(params, camera, np.zeros(params.batch_size, bool),
                   np.zeros(params.batch_size, np.float32), "anny")


@pytest.fixture(scope="module")
def fits(body):
    """A reference photo (one frame) and a driver of another build that leans, turns and
    walks sideways and away, seen by another camera."""
    ref_camera = CameraIntrinsics.centred(400, 600)
    reference = body.zero_params(1, shape=torch.tensor([0.8, 0.6, 0.3, 0.6, 0.7, 0.5]))
    reference.body_pose[0, BODY_JOINTS.index("upperarm01.L"), 1] = 0.4
    reference.global_orient[0, 1] = 0.2
    reference.transl[0] = torch.tensor([0.1, 0.05, 35.0])

    drv_camera = CameraIntrinsics.centred(512, 512)
    driver = body.zero_params(FRAMES, shape=torch.tensor([0.2, 0.7, 0.7, 0.3, 0.3, 0.5]))
    phase = torch.linspace(0, 1, FRAMES)
    driver.body_pose[:, BODY_JOINTS.index("spine03"), 2] = 0.25  # a sideways lean
    driver.body_pose[:, BODY_JOINTS.index("upperarm01.R"), 1] = -0.9 * phase
    driver.global_orient[:, 1] = -0.6 + 0.8 * phase  # turned away, then turning
    driver.transl[:] = torch.tensor([-0.3, 0.1, 45.0])
    driver.transl[:, 0] += 0.5 * phase
    driver.transl[:, 2] += 2.0 * phase
    return make_fit(reference, ref_camera), make_fit(driver, drv_camera)


def projected(body, fit, frame=0):
    with torch.no_grad():
        out = body(fit.params.select(slice(frame, frame + 1)))
    return fit.camera.project(out.keypoints[0]), fit.camera.project(out.vertices[0])


def heading(body, params):
    with torch.no_grad():
        frame = torso_frame(body.keypoints(params.select(slice(0, 1))))[0]
    return torch.atan2(frame[0, 2], frame[2, 2])


def test_frame_0_stands_on_the_reference_person(body, fits):
    reference, driver = fits
    aligned = align(reference, driver, body)
    assert aligned.camera == reference.camera
    torch.testing.assert_close(aligned.params.shape, reference.params.shape)
    ref_kp, ref_vertices = projected(body, reference)
    kp, vertices = projected(body, aligned)
    # the torso centres share a column; the lowest points (the feet) share a row
    assert abs(kp[TORSO, 0].mean() - ref_kp[TORSO, 0].mean()) < 0.05
    assert abs(vertices[:, 1].max() - ref_vertices[:, 1].max()) < 0.05
    assert abs(float(heading(body, aligned.params) - heading(body, reference.params))) < 1e-3

    floating = align(reference, driver, body, AlignSettings(reground=False))
    kp, _ = projected(body, floating)
    torch.testing.assert_close(kp[TORSO].mean(0), ref_kp[TORSO].mean(0), atol=0.05, rtol=0)


def test_driver_motion_is_kept(body, fits):
    reference, driver = fits
    aligned = align(reference, driver, body)
    drv, out = driver.params, aligned.params
    torch.testing.assert_close(out.body_pose, drv.body_pose)
    torch.testing.assert_close(out.hand_pose, drv.hand_pose)
    # orientations relative to frame 0 are the driver's, turned by one fixed correction
    turn = lambda p: roma.rotvec_to_rotmat(p.global_orient)
    correction = turn(out)[0] @ turn(drv)[0].T
    torch.testing.assert_close(turn(out), correction @ turn(drv), atol=1e-5, rtol=0)
    # translations relative to frame 0: sideways and vertical moves scaled by the body
    # heights, depth moves by the depth ratio, all turned by the same correction
    scale = body_height(body, reference.params.shape) / body_height(body, drv.shape)
    depth = reference.params.transl[0, 2] / drv.transl[0, 2]
    expected = ((drv.transl - drv.transl[:1]) * torch.tensor([scale, scale, float(depth)])) @ correction.T
    torch.testing.assert_close(out.transl - out.transl[:1], expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.transl[0, 2], reference.params.transl[0, 2])


def test_options(body, fits):
    reference, driver = fits
    own_camera = align(reference, driver, body, AlignSettings(keep_driver_camera=True))
    assert own_camera.camera == driver.camera
    torch.testing.assert_close(own_camera.params.shape, reference.params.shape)
    for name in ("global_orient", "body_pose", "hand_pose", "transl"):
        torch.testing.assert_close(getattr(own_camera.params, name), getattr(driver.params, name))

    own_shape = align(reference, driver, body, AlignSettings(keep_driver_shape=True))
    torch.testing.assert_close(own_shape.params.shape, driver.params.shape)

    absolute = align(reference, driver, body, AlignSettings(face_like_reference=False))
    torch.testing.assert_close(absolute.params.global_orient, driver.params.global_orient)
