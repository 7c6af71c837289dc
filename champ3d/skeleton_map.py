"""The skeleton guidance map: the fitted body's keypoints drawn as DWPose/OpenPose draws them.

Champ's ``dwpose`` guidance is DWPose's drawing of body (OpenPose-18), hands and face.
Here the points come from the fitted 3D body projected through the render camera, so
they are exactly consistent with the depth/normal/semantic maps and never flicker from
detector noise. The OpenPose neck is the shoulders' midpoint.

Face: DWPose draws 68 face landmarks as white dots. The body keypoints have no 68-point
face, so the face points they do have, :data:`FACE_KEYPOINTS` (the nose tip, iBUG point
30, and the eye centres, standing in for the six-point eye contours), are drawn in that
style, over the body's own nose and eye discs as DWPose's landmarks are. Like DWPose's
face, which is not found on a person seen from behind, they are drawn only in frames
where the face is towards the camera (:func:`facing_camera`).
"""
from __future__ import annotations

import numpy as np

from champ3d.body.keypoints import hand_slice, keypoint_index
from render.skeleton import OPENPOSE_BODY_18, draw_pose

_BODY_SOURCES = {name: name for name in OPENPOSE_BODY_18 if name != "neck"}

FACE_KEYPOINTS = ("nose", "right_eye", "left_eye")


def openpose_body(keypoints_2d: np.ndarray) -> np.ndarray:
    """(B, K, 2) champ3d keypoints -> (B, 18, 2) in OpenPose-18 order."""
    shoulders = keypoints_2d[:, [keypoint_index("left_shoulder"), keypoint_index("right_shoulder")]].mean(1)
    columns = [shoulders if name == "neck" else keypoints_2d[:, keypoint_index(_BODY_SOURCES[name])]
               for name in OPENPOSE_BODY_18]
    return np.stack(columns, axis=1)


def facing_camera(keypoints_2d: np.ndarray) -> np.ndarray:
    """(B,) bool: the face is towards the camera.

    Seen from the front, the person's left is on the image's right: the left ear and eye
    lie to the right of the right ones (summed, so one crossed pair in a near-profile view
    does not decide). Seen from behind the order flips; a head upside down in the image
    (a handstand) would flip it too.
    """
    x = lambda name: keypoints_2d[:, keypoint_index(name), 0]
    return (x("left_ear") - x("right_ear")) + (x("left_eye") - x("right_eye")) > 0


def skeleton_images(keypoints_2d: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(B, K, 2) projected keypoints -> (B, H, W, 3) uint8 RGB skeleton maps."""
    body = openpose_body(keypoints_2d)
    hands = np.stack([keypoints_2d[:, hand_slice("left")], keypoints_2d[:, hand_slice("right")]], axis=1)
    face = keypoints_2d[:, [keypoint_index(name) for name in FACE_KEYPOINTS]]
    face_scores = np.repeat(facing_camera(keypoints_2d)[:, None], len(FACE_KEYPOINTS), axis=1).astype(np.float64)
    return np.stack([
        draw_pose(image_size, body=body[b], hands=hands[b], face=face[b], face_scores=face_scores[b])
        for b in range(len(keypoints_2d))
    ])
