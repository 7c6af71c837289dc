"""Pose skeleton images in the DWPose / OpenPose drawing convention Champ was trained on.

Champ's ``dwpose/`` guidance is the canvas drawn by DWPose's ControlNet annotator: black
background, RGB colours, drawn at the image's own size. This module reproduces that
drawing from keypoints, and owns the keypoint orders:

* body: :data:`OPENPOSE_BODY_18`, the 18 OpenPose (COCO-18) points, with ``neck`` the
  midpoint of the shoulders;
* hands: :data:`HAND_21`, 21 points per hand (wrist, then four joints per
  finger from thumb to little finger, each base to tip), left hand first;
* face: any number of points, each drawn alike (DWPose gives the 68 iBUG 300-W points:
  jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).

Keypoints are pixel coordinates (``render.cameras`` convention) with a confidence each.
Like DWPose, the drawing truncates coordinates to integers (``int(x)``), draws a body point
when its confidence is **above** the threshold and a hand or face point when it is **at
least** the threshold, and skips hand and face points whose truncated x or y is below 1.

Drawing order and style (all with OpenCV, 8-connected, no anti-aliasing):

1. every body limb of :data:`BODY_LIMBS` whose two ends are drawn: a filled ellipse
   from ``cv2.ellipse2Poly`` centred at the truncated midpoint, half-length
   ``int(length / 2)``, half-width 4, angle ``int(degrees(atan2(dy, dx)))``, in
   :data:`BODY_COLOURS` of the limb; then the whole canvas is scaled by 0.6 (truncated);
2. every drawn body point: a filled circle of radius 4 in its :data:`BODY_COLOURS`;
3. every hand (all left hands, then all right hands): each :data:`HAND_EDGES` edge with
   both ends drawn as a line of thickness 2, coloured by hue ``edge / 20`` at full
   saturation and value; then each drawn point as a filled circle of radius 4 in
   (0, 0, 255), i.e. blue (OpenPose's BGR red, kept as written on DWPose's RGB canvas);
4. every drawn face point: a filled white circle of radius 3, over whatever is there
   (DWPose's ``draw_facepose``).
"""
from __future__ import annotations

import colorsys
import math
from typing import Tuple

import cv2
import numpy as np

OPENPOSE_BODY_18 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)

HAND_21 = ("wrist",) + tuple(
    f"{finger}_{joint}"
    for finger, joints in (
        ("thumb", ("cmc", "mcp", "ip", "tip")),
        ("index", ("mcp", "pip", "dip", "tip")),
        ("middle", ("mcp", "pip", "dip", "tip")),
        ("ring", ("mcp", "pip", "dip", "tip")),
        ("little", ("mcp", "pip", "dip", "tip")),
    )
    for joint in joints
)

#: Body limbs drawn, as pairs of :data:`OPENPOSE_BODY_18` indices, in drawing order.
BODY_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

#: RGB colour of limb ``i`` and of body point ``i``.
BODY_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

#: Hand edges, as pairs of :data:`HAND_21` indices, in drawing order.
HAND_EDGES = tuple(
    edge for finger in range(5) for edge in ((0, 4 * finger + 1),) + tuple(
        (4 * finger + j, 4 * finger + j + 1) for j in range(1, 4))
)

LIMB_HALF_WIDTH = 4
LIMB_DIMMING = 0.6
BODY_POINT_RADIUS = 4
HAND_LINE_THICKNESS = 2
HAND_POINT_RADIUS = 4
HAND_POINT_COLOUR = (0, 0, 255)
FACE_POINT_RADIUS = 3
FACE_POINT_COLOUR = (255, 255, 255)

#: DWPose's confidence threshold.
DEFAULT_THRESHOLD = 0.3


def hand_edge_colour(edge: int) -> Tuple[int, int, int]:
    """RGB colour of hand edge ``edge``: HSV (edge / 20, 1, 1), each channel times 255 and
    rounded half to even (as OpenCV converts DWPose's float colours)."""
    rgb = colorsys.hsv_to_rgb(edge / float(len(HAND_EDGES)), 1.0, 1.0)
    return tuple(int(round(c * 255)) for c in rgb)


def _people(name: str, points, scores, shape: Tuple[int, ...]):
    """``points`` as (P, *shape, 2) float64 and ``scores`` as (P, *shape) (1 where None)."""
    array = np.asarray(points, dtype=np.float64)
    if array.shape == shape + (2,):
        array = array[None]
    if array.ndim != len(shape) + 2 or array.shape[1:] != shape + (2,):
        raise ValueError(f"{name}: expected shape {shape + (2,)} or (P, {', '.join(map(str, shape + (2,)))}), "
                         f"got {array.shape}")
    if scores is None:
        return array, np.ones(array.shape[:-1])
    conf = np.asarray(scores, dtype=np.float64)
    if conf.shape == shape:
        conf = conf[None]
    if conf.shape != array.shape[:-1]:
        raise ValueError(f"{name}: {np.shape(scores)} scores for points of shape {array.shape}")
    return array, conf


def draw_pose(image_size: Tuple[int, int], body=None, body_scores=None, hands=None, hand_scores=None,
              face=None, face_scores=None, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The (H, W, 3) uint8 RGB skeleton image of one or more people (module docstring).

    Args:
        image_size: (H, W).
        body: (18, 2) or (P, 18, 2) pixel coordinates in :data:`OPENPOSE_BODY_18` order.
        hands: (2, 21, 2) or (P, 2, 21, 2), left hand then right, :data:`HAND_21` order.
        face: (N, 2) or (P, N, 2) face points (DWPose: N = 68, iBUG order).
        body_scores, hand_scores, face_scores: matching confidences; None draws every point.
        threshold: confidence threshold (DWPose's 0.3).
    """
    H, W = image_size
    canvas = np.zeros((H, W, 3), np.uint8)
    if body is not None:
        points, scores = _people("body", body, body_scores, (len(OPENPOSE_BODY_18),))
        drawn = scores > threshold
        for limb, (a, b) in enumerate(BODY_LIMBS):
            for person in range(len(points)):
                if drawn[person, a] and drawn[person, b]:
                    _draw_limb(canvas, points[person, a], points[person, b], BODY_COLOURS[limb])
        canvas = (canvas * LIMB_DIMMING).astype(np.uint8)
        for joint in range(len(OPENPOSE_BODY_18)):
            for person in range(len(points)):
                if drawn[person, joint]:
                    x, y = points[person, joint]
                    cv2.circle(canvas, (int(x), int(y)), BODY_POINT_RADIUS, BODY_COLOURS[joint], thickness=-1)
    if hands is not None:
        points, scores = _people("hands", hands, hand_scores, (2, len(HAND_21)))
        for side in range(2):
            for person in range(len(points)):
                _draw_hand(canvas, points[person, side], scores[person, side] >= threshold)
    if face is not None:
        count = np.shape(face)[-2] if np.ndim(face) >= 2 else 0
        points, scores = _people("face", face, face_scores, (count,))
        for person in range(len(points)):
            for (x, y), score in zip(points[person], scores[person]):
                if score >= threshold and int(x) >= 1 and int(y) >= 1:
                    cv2.circle(canvas, (int(x), int(y)), FACE_POINT_RADIUS, FACE_POINT_COLOUR, thickness=-1)
    return canvas


def _draw_limb(canvas: np.ndarray, start: np.ndarray, end: np.ndarray, colour) -> None:
    (x0, y0), (x1, y1) = start, end
    length = ((x0 - x1) ** 2 + (y0 - y1) ** 2) ** 0.5
    angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
    centre = (int((x0 + x1) / 2), int((y0 + y1) / 2))
    polygon = cv2.ellipse2Poly(centre, (int(length / 2), LIMB_HALF_WIDTH), int(angle), 0, 360, 1)
    cv2.fillConvexPoly(canvas, polygon, colour)


def _draw_hand(canvas: np.ndarray, points: np.ndarray, scored: np.ndarray) -> None:
    pixels = [(int(x), int(y)) if ok else (0, 0) for (x, y), ok in zip(points, scored)]
    drawn = [ok and x >= 1 and y >= 1 for ok, (x, y) in zip(scored, pixels)]
    for edge, (a, b) in enumerate(HAND_EDGES):
        if drawn[a] and drawn[b]:
            cv2.line(canvas, pixels[a], pixels[b], hand_edge_colour(edge), thickness=HAND_LINE_THICKNESS)
    for pixel, ok in zip(pixels, drawn):
        if ok:
            cv2.circle(canvas, pixel, HAND_POINT_RADIUS, HAND_POINT_COLOUR, thickness=-1)
