"""Raw footage -> Champ guidance: fit both inputs, align, render Champ's layout.

Output layout of :func:`make_guidance` (Champ's ``example_data/motions/<motion>/``)::

    DIR/depth/0000.png ...        8-bit grey, Champ's per-frame normalised depth
    DIR/normal/0000.png ...       RGB camera-frame normals
    DIR/semantic_map/0000.png ... RGB part palette on black
    DIR/dwpose/0000.png ...       OpenPose/DWPose-style skeleton on black
    DIR/mask/0000.png ...         0/255 body mask
    DIR/ref.png                   the reference image at the guidance size
    DIR/fits/{reference,driving,aligned}.{json,safetensors}
    DIR/qc.mp4, DIR/contact_sheet.png, DIR/qc.json

Encodings are owned by :mod:`render.shaders` and :mod:`render.skeleton`. The folder is
built under a temporary name and renamed when complete.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np
import torch
from tqdm import tqdm

from champ3d.alignment import AlignSettings, align
from champ3d.body.base import BodyModel
from champ3d.detect.mediapipe_person import PersonDetections, detect_person
from champ3d.errors import Champ3dInputError
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fit_io import save_fit
from champ3d.fitting.fitter import BodyFit, BodyFitter, FitSettings
from champ3d.guidance_folder import GUIDANCE_TYPES
from champ3d.io.atomic import atomic_output_dir
from champ3d.io.frames import open_frames
from champ3d.io.images import read_image
from champ3d.io.writers import PngSequenceWriter, VideoWriter
from champ3d.skeleton_map import skeleton_images
from render.renderer import ChampMapRenderer

RENDER_BATCH = 16


@dataclass
class FittedMedia:
    fit: BodyFit
    detections: PersonDetections
    info: dict = field(default_factory=dict)


def fit_media(path, body: BodyModel, *, max_frames: Optional[int] = None, settings: FitSettings | None = None,
              focal_scale: float | None = None, tight: bool = False) -> FittedMedia:
    """Detect and fit the person in an image or a video (every frame; none dropped), with
    ``settings`` or the image or video defaults; ``tight``: :meth:`FitSettings.tight`."""
    source = open_frames(path, max_frames=max_frames)
    is_image = source.frame_rate is None and (source.num_frames == 1)
    H, W = source.size
    frames = tqdm(source, total=source.num_frames, desc=f"detect {Path(path).name}", unit="frame", leave=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detections = detect_person(frames, static_image=is_image)
    for w in caught:
        message = str(w.message)
        warnings.warn(message if message.startswith(str(path)) else f"{path}: {message}", stacklevel=2)
    if not detections.found.any():
        raise Champ3dInputError(path, "no person found" + ("" if is_image else " in any frame"))
    if detections.interpolated.any():
        warnings.warn(
            f"{path}: person lost in {int(detections.interpolated.sum())} of {detections.num_frames} frames; "
            "those frames are interpolated and flagged",
            stacklevel=2,
        )
    camera = CameraIntrinsics.centred(W, H) if focal_scale is None else CameraIntrinsics.centred(W, H, focal_scale)
    settings = settings or (FitSettings.for_image() if is_image else FitSettings())
    fitter = BodyFitter(body, settings.tight() if tight else settings)
    chunks = lambda it: tqdm(it, desc=f"fit {Path(path).name}", unit="chunk", leave=False)
    fit = fitter.fit(detections, camera, progress=chunks)
    info = {
        "source": str(path),
        "image_size": [H, W],
        "fps": source.fps,
        "frame_rate": None if source.frame_rate is None else str(source.frame_rate),
        "num_frames": detections.num_frames,
        "frames_interpolated": int(detections.interpolated.sum()),
        "median_error_2d": float(np.median(fit.error_2d)),
    }
    return FittedMedia(fit, detections, info)


def output_camera(camera: CameraIntrinsics, long_side: int, multiple: int = 8) -> CameraIntrinsics:
    """``camera`` for the image resized so its longer side is ``long_side`` (sides rounded to
    a multiple of ``multiple``, as video codecs and latent diffusion need)."""
    scale = long_side / max(camera.width, camera.height)
    width = max(multiple, int(round(camera.width * scale / multiple)) * multiple)
    height = max(multiple, int(round(camera.height * scale / multiple)) * multiple)
    return camera.resized(width, height)


def rendered_batches(fit: BodyFit, body: BodyModel, camera: CameraIntrinsics,
                     batch: int = RENDER_BATCH) -> Iterator[tuple[slice, object, np.ndarray]]:
    """Yield (frames, ChampMaps, projected keypoints (B, K, 2)) for ``fit`` seen by ``camera``."""
    renderer = ChampMapRenderer(body.faces.numpy(), body.face_parts.numpy(), (camera.height, camera.width),
                                frames_per_pass=batch)
    cameras = camera.to_cameras()
    for start in range(0, fit.num_frames, batch):
        frames = slice(start, min(start + batch, fit.num_frames))
        with torch.no_grad():
            out = body(fit.params.select(frames))
        maps = renderer(out.vertices.numpy(), cameras)
        yield frames, maps, camera.project(out.keypoints).numpy()


def write_guidance(fit: BodyFit, body: BodyModel, camera: CameraIntrinsics, folder: Path) -> None:
    """Write the five guidance folders of ``fit`` rendered through ``camera``."""
    writers = {name: PngSequenceWriter(folder / name) for name in GUIDANCE_TYPES}
    for writer in writers.values():
        writer.__enter__()
    try:
        batches = rendered_batches(fit, body, camera)
        for frames, maps, keypoints in tqdm(batches, total=math.ceil(fit.num_frames / RENDER_BATCH),
                                            desc="render guidance", unit="batch", leave=False):
            skeletons = skeleton_images(keypoints, (camera.height, camera.width))
            for i in range(frames.stop - frames.start):
                writers["depth"].write(maps.depth[i])
                writers["normal"].write(maps.normal[i])
                writers["semantic_map"].write(maps.semantic[i])
                writers["mask"].write(maps.mask[i])
                writers["dwpose"].write(skeletons[i])
    except BaseException as error:
        for writer in writers.values():
            writer.__exit__(type(error), error, error.__traceback__)
        raise
    for writer in writers.values():
        writer.__exit__(None, None, None)


def make_guidance(ref: Path, driving: Path, out: Path, body: BodyModel, *, size: int = 512,
                  max_frames: Optional[int] = None, align_settings: AlignSettings | None = None,
                  overwrite: bool = False) -> dict:
    """The whole ``champ3d guidance`` command; returns the QC summary."""
    ref_fit = fit_media(ref, body)
    drv_fit = fit_media(driving, body, max_frames=max_frames)
    return guidance_from_fits(ref_fit, drv_fit, read_image(ref), driving, out, body, size=size,
                              max_frames=max_frames, align_settings=align_settings, overwrite=overwrite)


def guidance_from_fits(ref_fit: FittedMedia, drv_fit: FittedMedia, reference_image: np.ndarray, driving: Path,
                       out: Path, body: BodyModel, *, size: int = 512, max_frames: Optional[int] = None,
                       align_settings: AlignSettings | None = None, overwrite: bool = False) -> dict:
    """Align already-computed fits and write the guidance folder ``out``; returns the QC summary.

    ``ref_fit`` is the fit of ``reference_image`` (uint8 HxWx3 RGB), ``drv_fit`` the fit of
    the first ``max_frames`` frames of ``driving`` (read again for the QC video). The fits'
    ``info["source"]`` is what the folder records as their origin.
    """
    from champ3d.qc import write_qc

    aligned = align(ref_fit.fit, drv_fit.fit, body, align_settings)
    camera = output_camera(aligned.camera, size)
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        tmp = Path(tmp)
        save_fit(tmp / "fits" / "reference", ref_fit.fit, ref_fit.detections, {"media": ref_fit.info})
        save_fit(tmp / "fits" / "driving", drv_fit.fit, drv_fit.detections, {"media": drv_fit.info})
        save_fit(tmp / "fits" / "aligned", aligned, drv_fit.detections,
                 {"reference": ref_fit.info["source"], "driving": drv_fit.info["source"],
                  "align": vars(align_settings or AlignSettings())})
        cv2.imwrite(str(tmp / "ref.png"), cv2.cvtColor(
            cv2.resize(reference_image, (camera.width, camera.height), interpolation=cv2.INTER_AREA),
            cv2.COLOR_RGB2BGR))
        write_guidance(aligned, body, camera, tmp)
        summary = write_qc(tmp, driving, drv_fit, aligned, ref_fit, body, camera, max_frames=max_frames)
        summary.update(reference=ref_fit.info, driving=drv_fit.info, guidance_size=[camera.height, camera.width])
        (tmp / "qc.json").write_text(json.dumps(summary, indent=2))
    return summary
