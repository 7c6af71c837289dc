"""MediaPipe person detection on real footage (skipped without the footage folder)."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from champ3d.detect.mediapipe_person import MASK_LONG_SIDE, PersonDetector, detect_person
from champ3d.io.frames import open_frames
from champ3d.io.images import read_image

FRAMES = 10


@pytest.fixture(scope="module")
def dance_frames(real_fixtures):
    video = open_frames(real_fixtures / "video" / "dance_unianimate_source.mp4", max_frames=FRAMES)
    return [cv2.resize(frame, (320, 512), interpolation=cv2.INTER_AREA) for frame in video]


def detect(frames, max_pending):
    with PersonDetector(max_pending=max_pending) as detector:
        for frame in frames:
            detector.add(frame)
        return detector.finish()


def test_overlapping_pose_and_hands_changes_nothing(dance_frames):
    """Frames in flight through the Pose and Hands threads give the detections of one
    frame at a time: each graph sees every frame in order."""
    one_at_a_time = detect(dance_frames, max_pending=0)
    overlapped = detect(dance_frames, max_pending=4)
    for name, value in one_at_a_time.to_arrays().items():
        np.testing.assert_array_equal(value, getattr(overlapped, name), err_msg=name)


def test_video_detections_are_complete(dance_frames):
    det = detect_person(dance_frames)
    assert det.num_frames == FRAMES and det.found.all() and not det.interpolated.any()
    assert tuple(det.image_size) == (512, 320)
    inside = (det.pose_2d >= -0.5) & (det.pose_2d <= np.array([319.5, 511.5]))
    assert inside[:, [0, 11, 12, 23, 24]].all()  # nose, shoulders and hips lie in the frame
    assert det.masks.shape == (FRAMES, MASK_LONG_SIDE, 160)
    person = (det.masks >= 128).mean(axis=(1, 2))
    assert ((person > 0.05) & (person < 0.6)).all()
    assert (det.hand_score > 0.5).any(axis=0).all(), "each hand is seen in some frame"
    seen = det.hand_score > 0.5
    wrists = det.pose_2d[:, [15, 16]]
    gaps = np.linalg.norm(det.hand_2d[:, :, 0] - wrists, axis=-1)[seen]
    assert np.median(gaps) < 0.05 * 512, "a hand's wrist lies at the pose's wrist of its side"


def test_photo_detection(real_fixtures):
    image = read_image(real_fixtures / "images" / "deepfashion_00004955.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one person: no warning
        det = detect_person([image], static_image=True)
    assert det.found.all() and tuple(det.image_size) == image.shape[:2]
    assert det.pose_visibility[0, [11, 12, 23, 24, 27, 28]].min() > 0.5  # full body in view
