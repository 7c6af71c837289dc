"""The body keypoint layout shared by every backend, the fitter and the skeleton map.

``KEYPOINT_NAMES`` = the 23 COCO-WholeBody body+feet points (COCO-17, then big toe,
small toe and heel per side), then 21 points per hand (left, then right) in the
MediaPipe / OpenPose hand order: wrist; thumb CMC, MCP, IP, tip; then index, middle,
ring and pinky, each MCP, PIP, DIP, tip. "left" is the person's left.
"""
from __future__ import annotations

BODY_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
    "left_heel", "right_heel",
)

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
THUMB_JOINTS = ("cmc", "mcp", "ip", "tip")
FINGER_JOINTS = ("mcp", "pip", "dip", "tip")

HAND_JOINT_NAMES = ("wrist",) + tuple(
    f"{finger}_{joint}"
    for finger in FINGERS
    for joint in (THUMB_JOINTS if finger == "thumb" else FINGER_JOINTS)
)

KEYPOINT_NAMES = BODY_KEYPOINT_NAMES + tuple(
    f"{side}_hand_{joint}" for side in ("left", "right") for joint in HAND_JOINT_NAMES
)

NUM_KEYPOINTS = len(KEYPOINT_NAMES)


def keypoint_index(name: str) -> int:
    return KEYPOINT_NAMES.index(name)


def hand_slice(side: str) -> slice:
    start = len(BODY_KEYPOINT_NAMES) + (0 if side == "left" else len(HAND_JOINT_NAMES))
    return slice(start, start + len(HAND_JOINT_NAMES))
