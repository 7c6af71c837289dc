"""The ``depth_tilt`` prior of upright fits (orbit renders): MediaPipe's depth leans a
person facing the camera forward; an upright fit keeps the torso and legs near the image
plane instead."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from test_fitting import synthetic_detections

from champ3d.body.keypoints import keypoint_index
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFitter, FitSettings
from champ3d.guidance import fit_media


def segment_tilts_deg(body, params) -> np.ndarray:
    """(5,) angles (degrees, + towards the camera) between the image plane and the torso
    (hip centre to shoulder centre), the thighs and the shins of frame 0 of ``params``."""
    with torch.no_grad():
        kp = body.keypoints(params)[0].numpy()
    at = lambda *names: np.mean([kp[keypoint_index(name)] for name in names], axis=0)
    segments = [at("left_shoulder", "right_shoulder") - at("left_hip", "right_hip")]
    for side in ("left", "right"):
        segments += [at(f"{side}_hip") - at(f"{side}_knee"), at(f"{side}_knee") - at(f"{side}_ankle")]
    segments = np.array(segments)
    return np.degrees(np.arcsin(-segments[:, 2] / np.linalg.norm(segments, axis=1)))


def lean_like_mediapipe(world: np.ndarray) -> np.ndarray:
    """MediaPipe world landmarks (T, 33, 3) given the depth error measured on the photos:
    shins 23 degrees forward (knees nearer the camera), thighs 13 back, the upper body 19
    forward (y points down, z away from the camera)."""
    y = world[..., 1]
    shift = np.zeros_like(y)  # added to the depth
    for ankle, knee, hip in ((27, 25, 23), (28, 26, 24)):
        shift[:, knee] = -np.tan(np.radians(23.0)) * (y[:, ankle] - y[:, knee])
        shift[:, hip] = shift[:, knee] + np.tan(np.radians(13.0)) * (y[:, knee] - y[:, hip])
    hips = [23, 24]
    upper = np.arange(23)
    shift[:, upper] = shift[:, hips].mean(1, keepdims=True) - np.tan(np.radians(19.0)) * (
        y[:, hips].mean(1, keepdims=True) - y[:, upper])
    leaning = world.copy()
    leaning[..., 2] += shift
    return leaning


def test_depth_tilt_undoes_a_leaning_depth_estimate(body):
    camera = CameraIntrinsics.centred(384, 512)
    truth = body.zero_params(1)  # standing straight, facing the camera
    truth.transl[0] = torch.tensor([0.0, 0.1, 40.0])
    detections = synthetic_detections(body, truth, camera)
    detections.pose_world = lean_like_mediapipe(detections.pose_world)

    without = dataclasses.replace(FitSettings.for_image(), shape_iterations=(40, 60))
    assert without.weights["depth_tilt"] == 0
    tilts = {}
    for name, settings in (("prior", without.upright()), ("no prior", without)):
        fit = BodyFitter(body, settings).fit(detections, camera)
        tilts[name] = segment_tilts_deg(body, fit.params)
        assert np.median(fit.error_2d) < 0.01, name
    # without the prior the fit follows the biased depth (torso 19, thighs -11, shins 23
    # degrees); with it the legs stand straight and the torso leans 5 degrees less (a weak
    # prior: a person who does lean towards the camera keeps most of it)
    assert np.abs(tilts["no prior"][1:]).min() > 8.0, tilts
    assert np.abs(tilts["prior"][1:]).max() < 6.0, tilts
    assert tilts["prior"][0] < tilts["no prior"][0] - 4.0, tilts


def test_upright_photo_fit_stands_upright(body, real_fixtures):
    """A standing DeepFashion model: MediaPipe alone gives a 19 degree forward torso and
    23 degree forward shins; the upright fit keeps every segment within 10 degrees."""
    photo = real_fixtures / "images" / "deepfashion_00005125.jpg"
    fitted = fit_media(photo, body, settings=FitSettings.for_image().upright())
    tilts = segment_tilts_deg(body, fitted.fit.params)
    assert np.abs(tilts).max() < 10.0, tilts
    assert np.median(fitted.fit.error_2d) < 0.01
