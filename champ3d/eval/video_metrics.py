"""Weight-free metrics that read a whole predicted video: pose following, jitter, foot
skating, mask IoU and multi-view consistency.

Each metric is a function of a :class:`VideoContext`, which gives the per-video inputs and
computes each at most once, so all metrics of one video share one fit per side:

- ``pred``: the fit of the predicted video (:mod:`champ3d.eval.fits`, cached on disk);
- ``target``: the pose the prediction should follow, ``GUIDANCE/<video>/fits/aligned`` (the
  body the guidance was rendered from, saved by :func:`champ3d.guidance.make_guidance`)
  when a guidance root is given and holds it, else the fit of the ground-truth video;
- ``GUIDANCE/<video>/mask/NNNN.png``: the guidance body masks (mask IoU);
- ``GUIDANCE/<video>/views.safetensors``: the orbit's body and cameras (multi-view, format
  in :mod:`champ3d.eval.multiview`).

Frame ``i`` of the prediction corresponds to frame ``i`` of the ground truth, of the
target fit and of the guidance. Per-frame metrics return values at the protocol's
evaluated frames; the temporal ones (jitter, foot skating) use every frame from the
protocol's first evaluated frame on, since they need consecutive frames. Definitions of
the pose measures: :mod:`champ3d.eval.pose`. Mask IoU: per frame, intersection over union
of the person segmentation MediaPipe gives for the predicted frame (stored with the fit at
:data:`champ3d.detect.mediapipe_person.MASK_LONG_SIDE` pixels, resized bilinearly to the
guidance size and thresholded at one half) and the guidance mask (non-zero pixels); 1 when
both are empty.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from champ3d.body.base import BodyModel
from champ3d.errors import Champ3dInputError
from champ3d.eval import pose
from champ3d.eval.fits import FittedVideo, fit_video, load_fitted
from champ3d.eval.frames import VideoPair
from champ3d.eval.multiview import GEOMETRY_FILE, load_view_geometry, multiview_l1
from champ3d.fitting.fit_io import fit_paths

TARGET_FIT = Path("fits") / "aligned"


class SharedInputs:
    """What every video of one evaluation shares: the fit cache folder, the guidance root
    (or None) and the body model (built on first use unless given)."""

    def __init__(self, fit_cache: Path, guidance_dir: Optional[Path], body: Optional[BodyModel] = None):
        self.fit_cache = Path(fit_cache)
        self.guidance_dir = None if guidance_dir is None else Path(guidance_dir)
        if self.guidance_dir is not None and not self.guidance_dir.is_dir():
            raise Champ3dInputError("guidance_dir", f"guidance folder {self.guidance_dir} does not exist")
        self._body = body

    @property
    def body(self) -> BodyModel:
        if self._body is None:
            from champ3d.body.anny_body import AnnyBody

            self._body = AnnyBody()
        return self._body


class VideoContext:
    """The inputs of one prediction / ground-truth pair, each computed on first use."""

    def __init__(self, pair: VideoPair, indices: np.ndarray, temporal_start: int, shared: SharedInputs):
        self.pair = pair
        self.indices = np.asarray(indices, dtype=int)
        self.temporal_start = temporal_start
        self.shared = shared
        self.inputs: dict[str, Any] = {}  # what was read, for the run record

    def check_frames(self, count: int, where: Path, field: str) -> None:
        if count != self.pair.num_frames:
            raise Champ3dInputError(where, f"video {self.pair.video_id}: {field} has {count} frames, "
                                    f"the prediction {self.pair.num_frames}")

    @cached_property
    def pred(self) -> FittedVideo:
        fitted = fit_video(self.pair.pred, self.shared.body, self.shared.fit_cache)
        self.check_frames(fitted.num_frames, self.pair.pred.path, "the fit of the prediction")
        self.inputs["pred_fit"] = str(fitted.path)
        return fitted

    @cached_property
    def target(self) -> FittedVideo:
        guidance_fit = None if self.shared.guidance_dir is None else \
            self.shared.guidance_dir / self.pair.video_id / TARGET_FIT
        if guidance_fit is not None and fit_paths(guidance_fit)[1].exists():
            fitted = load_fitted(guidance_fit, self.shared.body)
            self.check_frames(fitted.num_frames, fitted.path, "the guidance fit")
            self.inputs["pose_target"] = {"kind": "guidance fit", "path": str(fitted.path)}
        else:
            fitted = fit_video(self.pair.gt, self.shared.body, self.shared.fit_cache)
            self.check_frames(fitted.num_frames, self.pair.gt.path, "the fit of the ground truth")
            self.inputs["pose_target"] = {"kind": "fit of the ground truth", "path": str(fitted.path)}
        return fitted

    def guidance_path(self, relative: str) -> Path:
        """``GUIDANCE/<video>/<relative>``, which must exist (metrics that read it only run with guidance)."""
        path = self.shared.guidance_dir / self.pair.video_id / relative
        if not path.exists():
            raise Champ3dInputError(path, f"video {self.pair.video_id}: guidance {relative} not found")
        self.inputs[f"guidance/{relative}"] = str(path)
        return path

    def read_prediction(self) -> np.ndarray:
        """Every predicted frame, uint8 ``(T, H, W, 3)``."""
        return np.stack([frame for _, frame in self.pair.pred.iter_frames()])


def _pose_frames(function, context: VideoContext) -> np.ndarray:
    frames = context.indices
    return function(context.pred.keypoints[frames], context.target.keypoints[frames])


def mpjpe(context: VideoContext) -> np.ndarray:
    return _pose_frames(pose.mpjpe, context)


def pa_mpjpe(context: VideoContext) -> np.ndarray:
    return _pose_frames(pose.pa_mpjpe, context)


def pck_at(alpha: float):
    """PCK@``alpha`` in the predicted frame: the target's keypoints are projected by its camera
    brought to the size of the prediction's fit."""
    def pck(context: VideoContext) -> np.ndarray:
        camera = context.pred.fit.camera
        target_camera = context.target.fit.camera.resized(camera.width, camera.height)
        frames = context.indices
        return pose.pck(context.pred.keypoints_2d(camera)[frames],
                        context.target.keypoints_2d(target_camera)[frames], alpha)

    return pck


def jitter(context: VideoContext) -> float:
    return pose.jitter(context.pred.keypoints[context.temporal_start:])


def foot_skating(context: VideoContext) -> float:
    return pose.foot_skating(context.pred.keypoints[context.temporal_start:])


def mask_iou(context: VideoContext) -> np.ndarray:
    from champ3d.guidance_folder import GuidanceFolder

    folder = GuidanceFolder(context.guidance_path("mask").parent, types=("mask",))
    context.check_frames(folder.num_frames, folder.path / "mask", "the guidance mask folder")
    height, width = folder.size
    detections = context.pred.detections
    values = []
    for index in context.indices:
        guide = folder.read("mask", int(index))[..., 0] > 0
        person = cv2.resize(detections.masks[index], (width, height), interpolation=cv2.INTER_LINEAR) >= 128
        union = np.logical_or(guide, person).sum()
        values.append(np.logical_and(guide, person).sum() / union if union else 1.0)
    return np.asarray(values, dtype=np.float64)


def multiview(context: VideoContext) -> np.ndarray:
    path = context.guidance_path(GEOMETRY_FILE)
    values = multiview_l1(context.read_prediction(), load_view_geometry(path), str(path))
    return values[context.indices]
