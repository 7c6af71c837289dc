"""The silhouette terms fit the body's build, which keypoints alone barely constrain: a
heavy-set body's photo (keypoints and its rendered mask) is fitted with and without them."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from test_fitting import synthetic_detections

from champ3d.body.anny_body import BODY_JOINTS
from champ3d.detect.mediapipe_person import MASK_LONG_SIDE
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFitter, FitSettings
from champ3d.qc import mask_iou
from render.renderer import ChampMapRenderer


def body_mask(body, params, camera: CameraIntrinsics) -> np.ndarray:
    renderer = ChampMapRenderer(body.faces.numpy(), body.face_parts.numpy(), (camera.height, camera.width))
    with torch.no_grad():
        vertices = body(params).vertices.numpy()
    return renderer(vertices, camera.to_cameras()).mask


def test_silhouette_fits_the_build(body):
    camera = CameraIntrinsics.centred(384, 512)
    mask_camera = camera.resized(round(384 * MASK_LONG_SIDE / 512), MASK_LONG_SIDE)
    names = list(body.anny.phenotype_labels)
    truth = body.zero_params(1)
    truth.shape = body.default_shape()[None].clone()
    truth.shape[0, names.index("weight")] = 0.95
    truth.shape[0, names.index("muscle")] = 0.2
    truth.body_pose[0, BODY_JOINTS.index("upperarm01.L"), 1] = 0.5  # the left arm away from the body
    truth.transl[0] = torch.tensor([0.0, 0.1, 40.0])
    detections = synthetic_detections(body, truth, camera)
    true_mask = body_mask(body, truth, mask_camera)
    detections.masks = true_mask

    settings = dataclasses.replace(FitSettings.for_image(), shape_iterations=(40, 60))
    no_silhouette = dataclasses.replace(
        settings, weights={**settings.weights, "silhouette_inside": 0.0, "silhouette_cover": 0.0})
    ious = {}
    for name, chosen in (("silhouette", settings), ("keypoints only", no_silhouette)):
        fit = BodyFitter(body, chosen).fit(detections, camera)
        ious[name] = mask_iou(body_mask(body, fit.params, mask_camera)[0] > 0, true_mask[0] > 0)
        assert np.median(fit.error_2d) < 0.01, name
    assert ious["silhouette"] > 0.9, ious
    assert ious["silhouette"] > ious["keypoints only"] + 0.03, ious
