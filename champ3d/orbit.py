"""Orbit renders (``champ3d orbit``): the reference photo's body, in its own fitted pose and
with its baked texture, seen from every view of a camera path (:mod:`render.camera_paths`;
by default 3DHM's turntable, 30 views every 12 degrees).

Output layout of :func:`render_orbit` (built under a temporary name, renamed when
complete); file ``NNNN`` is view ``NNNN`` of the path::

    DIR/depth/NNNN.png, normal/, semantic_map/, dwpose/, mask/   Champ's guidance maps
    DIR/textured/NNNN.png     the textured body over black (premultiplied colour)
    DIR/orbit.mp4             the textured views in order, over the background (black by
                              default; :mod:`champ3d.background`: the reference photo with
                              the person removed, a colour or an image)
    DIR/orbit_grid.png        contact sheet of the textured views, labelled with their azimuth
    DIR/cameras.json          the path and, per view, its azimuth, elevation, distance and
                              world-to-camera R, T (world = the reference camera's frame),
                              with the shared intrinsics
    DIR/views.safetensors     the body mesh and every view's camera, for the multi-view
                              consistency metric (:mod:`champ3d.eval.multiview`)
    DIR/ref.png, DIR/texture.png, DIR/texture_sources.png, DIR/fits/reference.{json,safetensors}
    DIR/background.png        the background plate (unless black)

The texture is the reference photo's, fused with more views of the person when given
(:mod:`champ3d.appearance`).

The reference is fitted upright (:meth:`champ3d.fitting.fitter.FitSettings.upright`):
the side views would otherwise show MediaPipe's forward lean and bent knees.

Every view shares the reference camera's intrinsics at the output size; the path turns
about the body's root joint (``centre`` in cameras.json).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import List

import cv2
import numpy as np
import torch

from champ3d.animation import (path_cameras, posed_vertices, reference_plate, render_animation, textured_renderer,
                               write_png)
from champ3d.appearance import TextureViews, reference_texture
from champ3d.background import BackgroundSpec
from champ3d.body.base import BodyModel
from champ3d.eval.multiview import GEOMETRY_FILE, save_view_geometry
from champ3d.fitting.fit_io import save_fit
from champ3d.fitting.fitter import BodyFit, FitSettings
from champ3d.guidance import fit_media, output_camera
from champ3d.io.atomic import atomic_output_dir
from champ3d.io.images import read_image
from champ3d.io.writers import PngSequenceWriter
from render.camera_paths import CameraPath

#: Longer side of one view in the contact sheet, pixels.
GRID_THUMBNAIL = 256


#: The default backdrop: black, so that views compare cleanly with one another.
BLACK = BackgroundSpec("colour", colour=(0, 0, 0))


def render_orbit(ref: Path, out: Path, body: BodyModel, path: CameraPath, *, size: int = 512,
                 atlas_size: int = 1024, texture_views: TextureViews | None = None,
                 infill_weights: Path | None = None, background: BackgroundSpec = BLACK, fps: float = 15,
                 overwrite: bool = False) -> dict:
    """The whole ``champ3d orbit`` command (module docstring); returns its summary."""
    from texture.atlas import check_atlas_size

    check_atlas_size(atlas_size)
    if infill_weights is not None:
        from texture.learned_infill import check_checkpoint_dir

        check_checkpoint_dir(infill_weights)
    started = time.perf_counter()
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        tmp = Path(tmp)
        fitted = fit_media(ref, body, settings=FitSettings.for_image().upright())  # seen from the side
        save_fit(tmp / "fits" / "reference", fitted.fit, fitted.detections, {"media": fitted.info})
        image = read_image(ref)
        camera = output_camera(fitted.fit.camera, size)
        write_png(tmp / "ref.png", cv2.resize(image, (camera.width, camera.height), interpolation=cv2.INTER_AREA))
        reference = reference_texture(image, fitted.fit, fitted.detections, body, atlas_size, texture_views,
                                      infill_weights, where=ref)
        texture, texture_info = reference.texture, reference.info
        write_png(tmp / "texture.png", texture)
        write_png(tmp / "texture_sources.png", reference.sources)

        # the reference pose once per view: a "clip" of identical frames seen by the path
        views = path.views
        pose = fitted.fit.params.select(torch.zeros(views, dtype=torch.long))
        clip = BodyFit(params=pose, camera=fitted.fit.camera, interpolated=np.zeros(views, bool),
                       error_2d=np.zeros(views, np.float32), backend=fitted.fit.backend)
        cameras = path_cameras(path, clip, camera, np.arange(views))
        renderer = textured_renderer(body, texture, camera)
        plate = reference_plate(background, (camera.height, camera.width), image, fitted.fit, fitted.detections, body)
        if background != BLACK:
            write_png(tmp / "background.png", plate)
        render_animation(tmp, clip, body, renderer, cameras, plate=plate, video_name="orbit.mp4", fps=fps,
                         guidance=True)
        thumbnails = [thumbnail(cv2.cvtColor(cv2.imread(str(tmp / "textured" / PngSequenceWriter.frame_name(k))),
                                             cv2.COLOR_BGR2RGB)) for k in range(views)]
        azimuth, elevation, distance = path.angles()
        labels = [f"{k}: {a % 360:.0f} deg" for k, a in enumerate(azimuth)]
        write_png(tmp / "orbit_grid.png", contact_sheet(thumbnails, labels))
        record = {
            "path": asdict(path),
            "centre": clip.params.transl[0].tolist(),
            "intrinsics": {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy,
                           "width": camera.width, "height": camera.height},
            "views": [{"azimuth": float(a), "elevation": float(e), "distance": float(d),
                       "R": cameras.R[k].tolist(), "T": cameras.T[k].tolist()}
                      for k, (a, e, d) in enumerate(zip(azimuth, elevation, distance))],
        }
        (tmp / "cameras.json").write_text(json.dumps(record, indent=2))
        vertices = posed_vertices(fitted.fit, body, slice(0, 1))[0][0]
        save_view_geometry(tmp / GEOMETRY_FILE, vertices, body.faces.numpy(), cameras)
        summary = {"views": views, "size": [camera.height, camera.width], "texture": texture_info,
                   "seconds": round(time.perf_counter() - started, 2)}
    return summary


def thumbnail(image: np.ndarray, long_side: int = GRID_THUMBNAIL) -> np.ndarray:
    scale = long_side / max(image.shape[:2])
    if scale >= 1:
        return image.copy()
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def contact_sheet(images: List[np.ndarray], labels: List[str]) -> np.ndarray:
    """Same-size uint8 RGB ``images`` in a near-square grid (row-major), each labelled."""
    h, w = images[0].shape[:2]
    columns = max(1, math.ceil(math.sqrt(len(images) * h / w)))
    rows = math.ceil(len(images) / columns)
    sheet = np.zeros((rows * h, columns * w, 3), np.uint8)
    scale = max(0.3, h / 600)
    for k, (image, label) in enumerate(zip(images, labels)):
        r, c = divmod(k, columns)
        tile = sheet[r * h:(r + 1) * h, c * w:(c + 1) * w]
        tile[:] = image
        cv2.putText(tile, label, (4, int(16 * scale / 0.43)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return sheet
