"""``champ3d demo``: the weight-free animation path end to end, with nothing to bring.

With the real footage folder (``$CHAMP3D_FIXTURES``, default ``../shared/fixtures``
from the working directory) it uses the DeepFashion photo and the dance clip. Without it
it first synthesises its inputs: a shaded body-model mannequin photographed in rest pose
and a clip of a differently shaped mannequin waving and stepping sideways, which MediaPipe
detects like a person. Either way the inputs then go through ``champ3d animate`` with the
weight-free mesh generator: guidance maps, the reference texture and ``animation.mp4``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from champ3d.body.anny_body import BODY_JOINTS, AnnyBody
from champ3d.body.base import BodyModel
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.io.writers import VideoWriter
from render.renderer import ChampMapRenderer

SYNTHETIC_FRAMES = 48
SYNTHETIC_SIZE = (512, 320)  # H, W
SKIN_RGB = np.array([224, 172, 140], np.float32)
BACKGROUND_RGB = np.array([90, 110, 130], np.float32)


def fixtures_folder() -> Path | None:
    folder = Path(os.environ.get("CHAMP3D_FIXTURES", Path("..") / "shared" / "fixtures"))
    return folder if (folder / "video" / "dance_unianimate_source.mp4").is_file() else None


def _shaded(body: BodyModel, params, camera: CameraIntrinsics) -> np.ndarray:
    """(B, H, W, 3) mannequin photos: skin colour lit from the camera over a flat background."""
    renderer = ChampMapRenderer(body.faces.numpy(), body.face_parts.numpy(), (camera.height, camera.width))
    with torch.no_grad():
        maps = renderer(body(params).vertices.numpy(), camera.to_cameras())
    facing = maps.normal[..., 2:3].astype(np.float32) / 255.0 * 2.0 - 1.0
    lit = SKIN_RGB * np.clip(0.35 + 0.65 * facing, 0.0, 1.0)
    return np.where(maps.mask[..., None] > 0, lit, BACKGROUND_RGB).astype(np.uint8)


def synthesise_inputs(folder: Path, body: BodyModel) -> tuple[Path, Path]:
    """Write ``reference.png`` and ``driving.mp4`` into ``folder``."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    H, W = SYNTHETIC_SIZE
    camera = CameraIntrinsics.centred(W, H)
    reference = body.zero_params(1, body.default_shape() + torch.tensor([0.3, 0.0, 0.0, 0.2, 0.1, 0.0]))
    reference.transl[:] = torch.tensor([0.0, 0.02, 40.0])
    ref_path = folder / "reference.png"
    cv2.imwrite(str(ref_path), cv2.cvtColor(_shaded(body, reference, camera)[0], cv2.COLOR_RGB2BGR))

    T = SYNTHETIC_FRAMES
    phase = torch.linspace(0.0, 2.0 * math.pi, T)
    driving = body.zero_params(T, body.default_shape() + torch.tensor([-0.3, 0.0, 0.2, 0.0, 0.0, 0.0]))
    joint = BODY_JOINTS.index
    driving.body_pose[:, joint("upperarm01.L"), 1] = 0.9 * torch.sin(phase)
    driving.body_pose[:, joint("upperarm01.R"), 1] = -0.9 * torch.sin(phase)
    driving.body_pose[:, joint("lowerarm01.L"), 1] = 0.6 * torch.sin(phase).clamp(min=0)
    driving.body_pose[:, joint("upperleg01.L"), 0] = -0.3 * torch.sin(2 * phase).clamp(min=0)
    driving.body_pose[:, joint("lowerleg01.L"), 0] = 0.5 * torch.sin(2 * phase).clamp(min=0)
    driving.global_orient[:, 1] = 0.25 * torch.sin(phase)
    driving.transl[:] = torch.tensor([0.0, 0.02, 40.0])
    driving.transl[:, 0] = 0.25 * torch.sin(phase)
    drv_path = folder / "driving.mp4"
    with VideoWriter(drv_path, fps=24, overwrite=True) as video:
        for frame in _shaded(body, driving, camera):
            video.write(frame)
    return ref_path, drv_path


def run_demo(out: Path, size: int = 512, overwrite: bool = False) -> dict:
    from champ3d.animation import AnimationSettings, animate

    body = AnnyBody()
    fixtures = fixtures_folder()
    if fixtures is not None:
        ref = fixtures / "images" / "deepfashion_00004955.jpg"
        driving = fixtures / "video" / "dance_unianimate_source.mp4"
        max_frames = SYNTHETIC_FRAMES
    else:
        ref, driving = synthesise_inputs(out.parent / f"{out.name}_inputs", body)
        max_frames = None
    print(f"demo: reference {ref}, driving {driving}")
    return animate(ref, driving, out, body, AnimationSettings(size=size, max_frames=max_frames), overwrite=overwrite)
