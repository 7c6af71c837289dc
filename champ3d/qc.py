"""Quality control of a guidance run: numbers (qc.json) and pictures (qc.mp4, contact sheet).

* ``driving_mask_iou``: per driving frame, IoU between the driving fit's rendered body
  mask (through the driving camera) and MediaPipe's person segmentation.
* ``driving_keypoint_error``: per frame, median distance between the fit's projected
  keypoints and MediaPipe's landmarks, in bounding-box heights.
* ``reference_mask_iou``: IoU of frame 0 of the aligned guidance mask with the reference
  person's segmentation.
* ``root_trajectory_correlation``: Pearson correlation of the projected root (pixels, x and
  y separately) of the aligned guidance against the driver's, over the clip.

``qc.mp4`` shows each driving frame with its fit drawn over it beside the aligned
guidance (normal | semantic | skeleton); ``contact_sheet.png`` shows six frames of
every guidance type.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from champ3d.body.base import BodyModel
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFit
from champ3d.io.frames import open_frames
from champ3d.io.writers import VideoWriter

SHEET_FRAMES = 6


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _root_pixels(fit: BodyFit, camera: CameraIntrinsics) -> np.ndarray:
    return camera.project(fit.params.transl).numpy()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) < 1e-6 or np.std(b) < 1e-6:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _to_height(image: np.ndarray, height: int) -> np.ndarray:
    if image.shape[0] == height:
        return image
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_qc(folder: Path, driving: Path, drv, aligned: BodyFit, ref, body: BodyModel,
             camera: CameraIntrinsics, max_frames=None) -> dict:
    from champ3d.guidance import output_camera, rendered_batches
    from champ3d.skeleton_map import skeleton_images

    drv_fit: BodyFit = drv.fit
    qc_camera = output_camera(drv_fit.camera, max(camera.height, camera.width))
    size = (qc_camera.width, qc_camera.height)
    ious, sheet_rows = [], {}
    T = drv_fit.num_frames
    sheet_ids = set(np.unique(np.linspace(0, T - 1, min(T, SHEET_FRAMES)).round().astype(int)).tolist())
    source = open_frames(driving, max_frames=max_frames)
    fps = source.frame_rate or 25
    frames = iter(source)
    with VideoWriter(folder / "qc.mp4", fps=fps, crf=20, preset="veryfast") as video:
        for batch, maps, keypoints in rendered_batches(drv_fit, body, qc_camera):
            skeletons = skeleton_images(keypoints, (qc_camera.height, qc_camera.width))
            for i, t in enumerate(range(batch.start, batch.stop)):
                frame = cv2.resize(next(frames), size, interpolation=cv2.INTER_AREA)
                segmentation = cv2.resize(drv.detections.masks[t], size, interpolation=cv2.INTER_LINEAR) >= 128
                ious.append(mask_iou(maps.mask[i] > 0, segmentation))
                body_pixels = maps.mask[i, ..., None] > 0
                overlay = np.where(body_pixels, (0.45 * frame + 0.55 * maps.normal[i]).astype(np.uint8), frame)
                overlay = np.where(skeletons[i].any(-1, keepdims=True), skeletons[i], overlay)
                name = f"{t:04d}.png"
                guidance = [_read_png(folder / kind / name) for kind in ("normal", "semantic_map", "dwpose")]
                overlay = _to_height(overlay, camera.height)
                video.write(np.concatenate([overlay] + guidance, axis=1))
                if t in sheet_ids:
                    grey = lambda kind: cv2.cvtColor(cv2.imread(str(folder / kind / name), cv2.IMREAD_GRAYSCALE),
                                                     cv2.COLOR_GRAY2RGB)
                    row = [overlay, grey("depth"), guidance[0], guidance[1], guidance[2], grey("mask")]
                    sheet_rows[t] = np.concatenate(row, axis=1)
    sheet = np.concatenate([sheet_rows[t] for t in sorted(sheet_rows)], axis=0)
    cv2.imwrite(str(folder / "contact_sheet.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))

    first_mask = cv2.imread(str(folder / "mask" / "0000.png"), cv2.IMREAD_GRAYSCALE) > 0
    ref_seg = cv2.resize(ref.detections.masks[0], (camera.width, camera.height), interpolation=cv2.INTER_LINEAR) >= 128
    aligned_root = _root_pixels(aligned, aligned.camera) / aligned.camera.height
    driver_root = _root_pixels(drv_fit, drv_fit.camera) / drv_fit.camera.height
    ious = np.asarray(ious)
    return {
        "driving_mask_iou": {"median": float(np.median(ious)), "min": float(ious.min()), "per_frame": ious.round(4).tolist()},
        "driving_keypoint_error": {"median": float(np.median(drv_fit.error_2d)),
                                   "per_frame": drv_fit.error_2d.round(5).tolist()},
        "reference_mask_iou": mask_iou(first_mask, ref_seg),
        "root_trajectory_correlation": {
            "x": _correlation(aligned_root[:, 0], driver_root[:, 0]),
            "y": _correlation(aligned_root[:, 1], driver_root[:, 1]),
        },
        "frames": {kind: len(list((folder / kind).glob("*.png"))) for kind in
                   ("depth", "normal", "semantic_map", "dwpose", "mask")},
        "frames_interpolated": int(drv_fit.interpolated.sum()),
    }
