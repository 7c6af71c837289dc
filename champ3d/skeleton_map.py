"""The skeleton guidance map: the fitted body's keypoints drawn as DWPose/OpenPose draws them.

Champ's ``dwpose`` guidance is DWPose's drawing of body (OpenPose-18), hands and face.
Here the points come from the fitted 3D body projected through the render camera, so
they are exactly consistent with the depth/normal/semantic maps and never flicker from
detector noise. The OpenPose neck is the shoulders' midpoint. Face points are not
drawn: the bundled body model has no face-landmark regressor.
"""
from __future__ import annotations

import numpy as np

from champ3d.body.keypoints import hand_slice, keypoint_index
from render.skeleton import OPENPOSE_BODY_18, draw_pose

_BODY_SOURCES = {name: name for name in OPENPOSE_BODY_18 if name != "neck"}


def openpose_body(keypoints_2d: np.ndarray) -> np.ndarray:
    """(B, K, 2) champ3d keypoints -> (B, 18, 2) in OpenPose-18 order."""
    shoulders = keypoints_2d[:, [keypoint_index("left_shoulder"), keypoint_index("right_shoulder")]].mean(1)
    columns = [shoulders if name == "neck" else keypoints_2d[:, keypoint_index(_BODY_SOURCES[name])]
               for name in OPENPOSE_BODY_18]
    return np.stack(columns, axis=1)


def skeleton_images(keypoints_2d: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(B, K, 2) projected keypoints -> (B, H, W, 3) uint8 RGB skeleton maps."""
    body = openpose_body(keypoints_2d)
    hands = np.stack([keypoints_2d[:, hand_slice("left")], keypoints_2d[:, hand_slice("right")]], axis=1)
    return np.stack([
        draw_pose(image_size, body=body[b], hands=hands[b]) for b in range(len(keypoints_2d))
    ])
