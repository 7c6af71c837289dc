"""Champ's semantic-map palette over the 24 SMPL body parts.

Part ``j`` (0..23, in the SMPL joint order of :data:`PART_NAMES`) has the colour
``cv2.applyColorMap(uint8(10 * j), cv2.COLORMAP_VIRIDIS)``, converted from OpenCV's BGR to RGB:
viridis at 10·j/255. Pelvis (0) is (68, 1, 84), head (15) is (33, 165, 133), right hand (23)
is (189, 223, 38). The background of a semantic map is black (0, 0, 0), which is not a
palette colour.

A body part is the SMPL joint with the largest linear-blend-skinning weight.
"""
from __future__ import annotations

import cv2
import numpy as np

#: The 24 SMPL joints / body parts, in SMPL order (the index is the part label).
PART_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)

NUM_PARTS = len(PART_NAMES)


def _viridis_palette() -> np.ndarray:
    codes = (10 * np.arange(NUM_PARTS)).astype(np.uint8).reshape(-1, 1)
    bgr = cv2.applyColorMap(codes, cv2.COLORMAP_VIRIDIS).reshape(-1, 3)
    return np.ascontiguousarray(bgr[:, ::-1])


#: (24, 3) uint8 RGB colour of each part label. Read-only.
SEMANTIC_PALETTE = _viridis_palette()
SEMANTIC_PALETTE.setflags(write=False)
