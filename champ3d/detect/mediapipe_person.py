"""Per-frame person landmarks from MediaPipe's bundled legacy solutions (no downloads).

Pose runs with ``model_complexity=1`` (the only model inside the 0.10.21 wheel), in video
(tracking) mode for clips and static mode for single images, with its person
segmentation; Hands runs beside it. All outputs are in the pixel frame of the *input*
image in ``render.cameras``' convention (integer coordinates are pixel centres, so
MediaPipe's normalised ``x`` becomes ``x · W − 0.5``).

MediaPipe's world landmarks are metres, origin between the hips, axes aligned with the
camera (x right, y down, z away): the OpenCV camera frame without translation. Their
scale is canonical, not the person's.
"""
from __future__ import annotations

import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Iterable

import cv2
import numpy as np


NUM_POSE_LANDMARKS = 33
NUM_HAND_LANDMARKS = 21

# MediaPipe Pose landmark index -> champ3d body keypoint (person's left/right in both).
POSE_TO_KEYPOINT = {
    0: "nose", 2: "left_eye", 5: "right_eye", 7: "left_ear", 8: "right_ear",
    11: "left_shoulder", 12: "right_shoulder", 13: "left_elbow", 14: "right_elbow",
    15: "left_wrist", 16: "right_wrist", 23: "left_hip", 24: "right_hip",
    25: "left_knee", 26: "right_knee", 27: "left_ankle", 28: "right_ankle",
    29: "left_heel", 30: "right_heel", 31: "left_big_toe", 32: "right_big_toe",
}
POSE_LEFT_WRIST, POSE_RIGHT_WRIST = 15, 16
POSE_HIPS = (23, 24)
POSE_SHOULDERS = (11, 12)

MASK_LONG_SIDE = 256  # stored segmentation masks are downscaled to this long side
MIN_OTHER_PERSON_AREA = 0.25  # a second person this large (mask area vs. the main one) counts
OTHER_PERSON_CHECK_EVERY = 30  # frames between searches for a second person (frame 0 always)


@dataclass
class PersonDetections:
    """Landmarks of one tracked person over ``T`` frames (numpy, float32 unless noted).

    ``found[t]`` is False where Pose lost the person; their landmarks are then
    interpolated from the neighbouring frames (``interpolated[t]`` True), never dropped.
    Hands are ``[left, right]`` of the person; ``hand_score`` is 0 where a hand was not seen.
    """

    image_size: np.ndarray  # (2,) int: H, W
    pose_2d: np.ndarray  # (T, 33, 2) pixels
    pose_visibility: np.ndarray  # (T, 33) in [0, 1]
    pose_world: np.ndarray  # (T, 33, 3) metres, camera axes, hip-centred
    hand_2d: np.ndarray  # (T, 2, 21, 2) pixels
    hand_world: np.ndarray  # (T, 2, 21, 3) metres, camera axes
    hand_score: np.ndarray  # (T, 2)
    masks: np.ndarray  # (T, h, w) uint8 0/255, person segmentation at MASK_LONG_SIDE
    found: np.ndarray  # (T,) bool
    interpolated: np.ndarray  # (T,) bool

    @property
    def num_frames(self) -> int:
        return len(self.found)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "PersonDetections":
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls)})

    def select(self, index) -> "PersonDetections":
        arrays = self.to_arrays()
        return PersonDetections(
            **{k: (v if k == "image_size" else v[index]) for k, v in arrays.items()}
        )

    def full_mask(self, t: int) -> np.ndarray:
        """Frame ``t``'s segmentation at the input image size (uint8 0/255)."""
        h, w = (int(s) for s in self.image_size)
        return cv2.resize(self.masks[t], (w, h), interpolation=cv2.INTER_LINEAR) >= 128


def pose_solution(static_image: bool, segmentation: bool = True):
    """MediaPipe Pose as the detector runs it: complexity 1, with its person segmentation,
    tracking and smoothing in video mode."""
    import mediapipe as mp

    return mp.solutions.pose.Pose(
        static_image_mode=static_image,
        model_complexity=1,
        enable_segmentation=segmentation,
        smooth_landmarks=not static_image,
        smooth_segmentation=segmentation and not static_image,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    )


def hands_solution(static_image: bool):
    """MediaPipe Hands as the detector runs it: two hands, complexity 1."""
    import mediapipe as mp

    return mp.solutions.hands.Hands(
        static_image_mode=static_image, max_num_hands=2, model_complexity=1,
        min_detection_confidence=0.5, min_tracking_confidence=0.5,
    )


class PersonDetector:
    """Streams frames through MediaPipe Pose + Hands; ``finish()`` returns the detections.

    ``detection_long_side`` downsizes frames before MediaPipe (it works at 256 px inside);
    landmarks are mapped back to the input resolution.

    Pose (with its segmentation) and Hands are independent MediaPipe graphs; each runs in
    a worker thread of its own (MediaPipe computes in its own threads and releases the GIL
    while waiting), so one frame's hands are found while another frame's pose is. Each
    graph still sees every frame, in order, as its tracking needs; at most
    ``max_pending`` frames are in flight, so memory does not grow with the clip.
    """

    def __init__(self, static_image: bool = False, detection_long_side: int = 640, hands: bool = True,
                 max_pending: int = 4):
        self._pose = pose_solution(static_image)
        self._hands = hands_solution(static_image) if hands else None
        self._pose_worker = ThreadPoolExecutor(1, thread_name_prefix="mediapipe-pose")
        self._hands_worker = ThreadPoolExecutor(1, thread_name_prefix="mediapipe-hands") if hands else None
        self.detection_long_side = detection_long_side
        self.max_pending = max_pending
        self._pending: deque = deque()
        self._frames: list[dict] = []
        self._image_size: tuple[int, int] | None = None
        self._other_pose = None  # a static Pose run with the tracked person painted out (made on first use)
        self.several_people_frames = 0

    def close(self) -> None:
        for worker in (self._pose_worker, self._hands_worker):
            if worker is not None:
                worker.shutdown(wait=True, cancel_futures=True)
        self._pose.close()
        if self._other_pose is not None:
            self._other_pose.close()
        if self._hands is not None:
            self._hands.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def add(self, frame: np.ndarray) -> None:
        """Queue one uint8 RGB frame (H, W, 3) for detection."""
        h, w = frame.shape[:2]
        if self._image_size is None:
            self._image_size = (h, w)
        elif self._image_size != (h, w):
            raise ValueError(f"frame of size {(h, w)} in a clip of size {self._image_size}")
        scale = min(1.0, self.detection_long_side / max(h, w))
        small = frame if scale == 1.0 else cv2.resize(
            frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
        small = np.ascontiguousarray(small)
        index = len(self._frames) + len(self._pending)
        pose = self._pose_worker.submit(self._detect_pose, small, index % OTHER_PERSON_CHECK_EVERY == 0)
        hands = self._hands_worker.submit(self._detect_hands, small) if self._hands is not None else None
        self._pending.append((pose, hands))
        while len(self._pending) > self.max_pending:
            self._collect()

    def _collect(self) -> None:
        pose, hands = self._pending.popleft()
        record, several_people = pose.result()
        seen_hands = hands.result() if hands is not None else []
        self.several_people_frames += several_people
        if record["found"]:
            _assign_hands(seen_hands, record)
        self._frames.append(record)

    def _detect_pose(self, small: np.ndarray, look_for_others: bool) -> tuple[dict, bool]:
        """The tracked person's record, and whether someone else of comparable size is in
        the frame: inside the tracked person's crop (a second blob in its segmentation) or,
        when ``look_for_others``, anywhere (a second Pose run on the frame with the tracked
        person painted out in grey)."""
        h, w = self._image_size
        result = self._pose.process(small)
        record = _empty_record((h, w))
        several_people = False
        if result.pose_landmarks is not None:
            lm = result.pose_landmarks.landmark
            record["pose_2d"] = _to_pixels([(p.x, p.y) for p in lm], w, h)
            record["pose_visibility"] = np.array([p.visibility for p in lm], np.float32)
            record["pose_world"] = np.array(
                [[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark], np.float32
            )
            record["found"] = True
            mask = result.segmentation_mask
            if mask is not None:
                record["mask"] = _store_mask(mask)
                several_people = _several_people(mask) or (look_for_others and self._another_person(small, mask))
        return record, several_people

    def _another_person(self, small: np.ndarray, mask: np.ndarray) -> bool:
        person = (mask > 0.5).astype(np.uint8)
        margin = max(3, round(0.02 * max(person.shape)))
        hidden = cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1,) * 2)) > 0
        painted = small.copy()
        painted[hidden] = 127
        if self._other_pose is None:
            self._other_pose = pose_solution(static_image=True)
        other = self._other_pose.process(painted)
        if other.pose_landmarks is None or other.segmentation_mask is None:
            return False
        # only what lies outside the painted-out area counts (the grey silhouette can look like a person)
        outside = (other.segmentation_mask > 0.5) & ~hidden
        return outside.sum() >= MIN_OTHER_PERSON_AREA * person.sum()

    def _detect_hands(self, small: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Every hand seen: (21 pixel points, 21 world points, handedness score). Hands runs on
        every frame, with or without a pose, to keep its tracker's timeline continuous."""
        h, w = self._image_size
        result = self._hands.process(small)
        if not result.multi_hand_landmarks:
            return []
        return [
            (_to_pixels([(p.x, p.y) for p in landmarks.landmark], w, h),
             np.array([[p.x, p.y, p.z] for p in world.landmark], np.float32),
             float(handed.classification[0].score))
            for landmarks, world, handed in zip(
                result.multi_hand_landmarks, result.multi_hand_world_landmarks, result.multi_handedness
            )
        ]

    def finish(self) -> PersonDetections:
        while self._pending:
            self._collect()
        if not self._frames:
            raise ValueError("no frames were given to the detector")
        stacked = {k: np.stack([f[k] for f in self._frames]) for k in self._frames[0]}
        found = stacked.pop("found").astype(bool)
        masks = stacked.pop("mask")
        detections = PersonDetections(
            image_size=np.array(self._image_size, np.int64),
            masks=masks,
            found=found,
            interpolated=~found,
            **stacked,
        )
        if found.any() and not found.all():
            _interpolate_missing(detections)
        if self.several_people_frames:
            warnings.warn(
                f"several people seen in {self.several_people_frames} of {len(found)} frames: "
                "fitting the person MediaPipe tracks (the largest, most central one)",
                stacklevel=2,
            )
        return detections


def _assign_hands(hands: list, record: dict) -> None:
    """Give each detected hand to the pose wrist it is nearest to (the surer one wins)."""
    wrists = record["pose_2d"][[POSE_LEFT_WRIST, POSE_RIGHT_WRIST]]
    for points, world, score in hands:
        side = int(np.argmin(np.linalg.norm(wrists - points[0], axis=1)))
        if score <= record["hand_score"][side]:
            continue
        record["hand_2d"][side] = points
        record["hand_world"][side] = world
        record["hand_score"][side] = score


def detect_person(frames: Iterable[np.ndarray], static_image: bool = False, progress=None) -> PersonDetections:
    """Run the detector over ``frames``; ``progress`` is an optional tqdm-like wrapper."""
    with PersonDetector(static_image=static_image) as detector:
        for frame in (progress(frames) if progress else frames):
            detector.add(frame)
        return detector.finish()


def _to_pixels(normalised, width: int, height: int) -> np.ndarray:
    return (np.asarray(normalised, np.float32) * np.float32([width, height]) - 0.5).astype(np.float32)


def _empty_record(size: tuple[int, int]) -> dict:
    h, w = size
    scale = MASK_LONG_SIDE / max(h, w)
    return {
        "pose_2d": np.zeros((NUM_POSE_LANDMARKS, 2), np.float32),
        "pose_visibility": np.zeros(NUM_POSE_LANDMARKS, np.float32),
        "pose_world": np.zeros((NUM_POSE_LANDMARKS, 3), np.float32),
        "hand_2d": np.zeros((2, NUM_HAND_LANDMARKS, 2), np.float32),
        "hand_world": np.zeros((2, NUM_HAND_LANDMARKS, 3), np.float32),
        "hand_score": np.zeros(2, np.float32),
        "mask": np.zeros((max(1, round(h * scale)), max(1, round(w * scale))), np.uint8),
        "found": False,
    }


def _store_mask(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    scale = MASK_LONG_SIDE / max(h, w)
    small = cv2.resize(mask, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return (small > 0.5).astype(np.uint8) * 255


def _several_people(mask: np.ndarray) -> bool:
    count, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0.5).astype(np.uint8))
    areas = np.sort(stats[1:, cv2.CC_STAT_AREA])[::-1]
    return len(areas) >= 2 and areas[1] >= MIN_OTHER_PERSON_AREA * areas[0]


def _interpolate_missing(d: PersonDetections) -> None:
    """Linear interpolation over lost frames (edge frames copy the nearest found one)."""
    known = np.nonzero(d.found)[0]
    t = np.arange(d.num_frames)
    after = np.clip(np.searchsorted(known, t), 0, len(known) - 1)
    before = np.clip(after - 1, 0, len(known) - 1)
    before = np.where(known[after] <= t, after, before)  # t itself found, or past the last
    t0, t1 = known[before], known[after]
    weight = np.where(t1 > t0, (t - t0) / np.maximum(t1 - t0, 1), 0.0).astype(np.float32)
    for name in ("pose_2d", "pose_visibility", "pose_world", "hand_2d", "hand_world", "hand_score", "masks"):
        values = getattr(d, name)
        w = weight.reshape((-1,) + (1,) * (values.ndim - 1))
        filled = (1 - w) * values[t0].astype(np.float32) + w * values[t1].astype(np.float32)
        if name in ("pose_visibility", "hand_score"):
            filled[~d.found] *= 0.5  # interpolated evidence counts half
        setattr(d, name, filled.astype(values.dtype))
