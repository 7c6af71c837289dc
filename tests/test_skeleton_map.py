"""The skeleton guidance map: body, hands and the face points drawn in DWPose's style."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from champ3d.body.keypoints import NUM_KEYPOINTS, hand_slice, keypoint_index
from champ3d.skeleton_map import FACE_KEYPOINTS, facing_camera, skeleton_images
from render.skeleton import BODY_COLOURS, OPENPOSE_BODY_18

SIZE = (256, 256)
WHITE = (255, 255, 255)
FRONT = {
    "nose": (128, 40), "right_eye": (120, 33), "left_eye": (136, 33), "right_ear": (110, 38),
    "left_ear": (146, 38), "right_shoulder": (100, 70), "left_shoulder": (156, 70),
    "right_elbow": (90, 110), "left_elbow": (166, 110), "right_wrist": (85, 150), "left_wrist": (171, 150),
    "right_hip": (112, 150), "left_hip": (144, 150), "right_knee": (110, 195), "left_knee": (146, 195),
    "right_ankle": (108, 240), "left_ankle": (148, 240),
}


def person(mirror: bool = False) -> np.ndarray:
    """(1, K, 2) keypoints of a person facing the camera (or, mirrored, facing away)."""
    kp = np.zeros((1, NUM_KEYPOINTS, 2))
    for name, xy in FRONT.items():
        kp[0, keypoint_index(name)] = xy
    for side, x in (("left", 200.0), ("right", 40.0)):  # hands well away from the head
        kp[0, hand_slice(side)] = np.stack([np.full(21, x), 140.0 + np.arange(21) * 3], axis=1)
    if mirror:
        kp[..., 0] = SIZE[1] - kp[..., 0]
    return kp


def colour(image, name):
    x, y = FRONT[name]
    return tuple(int(c) for c in image[y, x])


def test_face_points_are_white_dots_over_the_body_discs():
    image = skeleton_images(person(), SIZE)[0]
    for name in FACE_KEYPOINTS:
        x, y = FRONT[name]
        body_colour = BODY_COLOURS[OPENPOSE_BODY_18.index(name)]
        assert colour(image, name) == WHITE
        assert tuple(image[y, x + 3]) == WHITE and tuple(image[y - 3, x]) == WHITE  # radius 3
        assert tuple(image[y, x + 4]) == body_colour and tuple(image[y + 4, x]) == body_colour  # radius 4 ring
    for name in ("right_ear", "left_ear"):  # no face landmark near the ears: body colour only
        assert colour(image, name) == BODY_COLOURS[OPENPOSE_BODY_18.index(name)]
    white = np.all(image == 255, axis=-1)
    assert white.sum() == len(FACE_KEYPOINTS) * white[33 - 3 : 33 + 4, 120 - 3 : 120 + 4].sum()  # only those dots


def test_no_face_points_on_a_person_seen_from_behind():
    image = skeleton_images(person(mirror=True), SIZE)[0]
    assert not np.all(image == 255, axis=-1).any()
    x, y = FRONT["nose"]
    assert tuple(image[y, SIZE[1] - x]) == BODY_COLOURS[0]


@pytest.mark.parametrize("yaw_degrees, facing", [(0, True), (60, True), (-60, True), (120, False),
                                                 (180, False), (-120, False)])
def test_facing_follows_the_body_turning(body, yaw_degrees, facing):
    from champ3d.fitting.camera import CameraIntrinsics

    params = body.zero_params(1)
    params.global_orient[0, 1] = np.radians(yaw_degrees)
    params.transl[0] = torch.tensor([0.0, 0.0, 40.0])
    with torch.no_grad():
        pixels = CameraIntrinsics.centred(384, 512).project(body.keypoints(params)).numpy()
    assert facing_camera(pixels).tolist() == [facing]
