"""Body fits of evaluated videos, computed once and cached on disk.

The weight-free metrics that look at the person (pose following, jitter, foot skating,
mask IoU) read the generated video through champ3d's own fitter
(:func:`champ3d.guidance.fit_media`: MediaPipe landmarks and segmentation, then the body
fit). Every video is fitted at most once per cache folder: the fit is saved with
:func:`champ3d.fitting.fit_io.save_fit` under a name derived from the content hash of the
video (file bytes, or the frame files' names and bytes), the body backend and the champ3d
version, so identical videos share one fit whatever their name or side, and an edited
video is fitted again. Fits are written atomically (the JSON last), so a cached fit is
either complete or absent.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from champ3d.body.base import BodyModel
from champ3d.detect.mediapipe_person import PersonDetections
from champ3d.eval.frames import VideoSource
from champ3d.eval.pose import NUM_BODY_KEYPOINTS
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fit_io import fit_paths, load_fit, save_fit
from champ3d.fitting.fitter import BodyFit


@dataclass
class FittedVideo:
    """A fit with its detections; ``path`` is the fit file it was saved to or read from."""

    fit: BodyFit
    detections: PersonDetections
    path: Path
    body: BodyModel

    @property
    def num_frames(self) -> int:
        return self.fit.num_frames

    @cached_property
    def keypoints(self) -> np.ndarray:
        """``(T, 23, 3)`` body keypoints in the fit's camera frame, metres."""
        with torch.no_grad():
            points = torch.cat([self.body.keypoints(self.fit.params.select(slice(a, a + 64)))
                                for a in range(0, self.num_frames, 64)])
        return points[:, :NUM_BODY_KEYPOINTS].double().numpy()

    def keypoints_2d(self, camera: CameraIntrinsics) -> np.ndarray:
        """``(T, 23, 2)`` body keypoints projected by ``camera``, pixels."""
        return camera.project(torch.from_numpy(self.keypoints)).numpy()


def fit_key(video_sha256: str, body: BodyModel) -> str:
    material = f"{video_sha256}|{body.backend}|champ3d {importlib.metadata.version('champ3d')}"
    return hashlib.sha256(material.encode()).hexdigest()


def fit_video(source: VideoSource, body: BodyModel, cache_dir: Path) -> FittedVideo:
    """The cached fit of ``source``, fitting it first when the cache does not hold it."""
    from champ3d.guidance import fit_media

    video_sha256 = source.sha256()
    path = Path(cache_dir) / fit_key(video_sha256, body)[:32]
    if fit_paths(path)[1].exists():
        return load_fitted(path, body)
    fitted = fit_media(source.path, body)
    save_fit(path, fitted.fit, fitted.detections, {"media": fitted.info, "video_sha256": video_sha256})
    return FittedVideo(fitted.fit, fitted.detections, fit_paths(path)[1], body)


def load_fitted(path: Path, body: BodyModel) -> FittedVideo:
    """A saved fit (``NAME.json`` + ``NAME.safetensors``)."""
    fit, detections, _ = load_fit(path)
    return FittedVideo(fit, detections, fit_paths(path)[1], body)
