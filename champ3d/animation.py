"""Weight-free animation (``champ3d animate``): the reference photo's texture on the
3D body performing the driving motion, composited on a background.

Output layout of :func:`animate` (the whole folder is built under a temporary name and
renamed when complete)::

    DIR/...                   everything champ3d.guidance.make_guidance writes: the five
                              guidance folders, ref.png, fits/{reference,driving,aligned}, qc.*
    DIR/texture.png           the reference's filled UV texture (texture.atlas convention)
    DIR/texture_sources.png   where each texel's colour came from (champ3d.appearance)
    DIR/textured/NNNN.png     the textured body per frame, over black (premultiplied colour)
    DIR/background.png        the background plate (mesh generator)
    DIR/animation.mp4         one frame per driving frame, at the driving video's frame rate
                              (25 fps for image folders)
    DIR/animation.json        settings and numbers of the run

Steps: guidance (fit, align, render); the reference texture baked from the reference fit
(``fits/reference``), fused with the other views of the person when given, and filled
(:mod:`champ3d.appearance`); then the aligned driving body is
rendered textured through the guidance camera (:class:`render.textured.TexturedRenderer`,
one pass with the guidance maps) and composited over the background
(:mod:`champ3d.background`). With a camera path (:mod:`render.camera_paths`) frame ``k`` is
seen from view ``k % views`` of the path, turned about that frame's root joint (so the body
stays framed as in the guidance), and the guidance folders are rendered again from those
cameras: every output follows the moving camera; the background plate stays a fixed
backdrop.

Generators: ``mesh`` (the default) writes the composite; ``champ`` hands the guidance
folder to Champ's diffusion pipeline (:func:`generate_with_champ`).
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from champ3d.alignment import AlignSettings
from champ3d.appearance import TextureViews, reference_texture
from champ3d.background import BackgroundSpec, background_plate
from champ3d.body.base import BodyModel
from champ3d.detect.mediapipe_person import PersonDetections
from champ3d.errors import Champ3dInputError
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fit_io import load_fit
from champ3d.fitting.fitter import BodyFit
from champ3d.guidance import output_camera
from champ3d.guidance_folder import GUIDANCE_TYPES, GuidanceFolder
from champ3d.io.atomic import atomic_output_dir
from champ3d.io.images import read_image
from champ3d.io.writers import PngSequenceWriter, VideoWriter
from champ3d.skeleton_map import skeleton_images
from render.camera_paths import CameraPath, view_extrinsics
from render.cameras import PerspectiveCameras
from render.rasterizer import MeshRasterizer
from render.textured import TexturedMaps, TexturedRenderer, composite

GENERATORS = ("mesh", "champ")
#: Frames rendered per batch.
RENDER_BATCH = 16
#: Frame rate of outputs whose driving input (an image folder) has none.
DEFAULT_FPS = 25


@dataclass
class AnimationSettings:
    size: int = 512
    max_frames: Optional[int] = None
    atlas_size: int = 1024
    texture_views: TextureViews = field(default_factory=TextureViews)
    infill_weights: Optional[Path] = None  # a Stable Diffusion inpainting pipeline folder
    background: BackgroundSpec = field(default_factory=lambda: BackgroundSpec("inpaint"))
    camera_path: Optional[CameraPath] = None
    generator: str = "mesh"
    weights: Optional[Path] = None
    generator_config: Optional[Path] = None  # YAML overriding configs/generate/champ.yaml
    align: AlignSettings = field(default_factory=AlignSettings)


def check_settings(settings: AnimationSettings) -> None:
    """Refuse settings that cannot work, before any work is done."""
    from texture.atlas import check_atlas_size

    check_atlas_size(settings.atlas_size)
    if settings.infill_weights is not None:
        from texture.learned_infill import check_checkpoint_dir

        check_checkpoint_dir(settings.infill_weights)
    if settings.generator not in GENERATORS:
        raise Champ3dInputError("--generator", f"must be one of {', '.join(GENERATORS)}, got {settings.generator!r}")
    if settings.generator == "champ":
        if settings.weights is None:
            raise Champ3dInputError("--weights", "the champ generator needs a weights folder")
        if not Path(settings.weights).is_dir():
            raise Champ3dInputError(settings.weights, "weights folder not found")
        if settings.generator_config is not None and not Path(settings.generator_config).is_file():
            raise Champ3dInputError(settings.generator_config, "generator settings file not found")


# -- the reference's appearance -------------------------------------------------------------

def posed_vertices(fit: BodyFit, body: BodyModel, frames: slice) -> Tuple[np.ndarray, np.ndarray]:
    """(B, V, 3) vertices and (B, K, 3) keypoints of ``fit``'s frames (its camera frame)."""
    with torch.no_grad():
        out = body(fit.params.select(frames))
    return out.vertices.numpy().astype(np.float32), out.keypoints.numpy().astype(np.float32)


def reference_plate(spec: BackgroundSpec, size: Tuple[int, int], image: np.ndarray, fit: BodyFit,
                    detections: PersonDetections, body: BodyModel) -> np.ndarray:
    """The background plate of ``spec`` at ``size`` (H, W). Inpainting removes the person
    of the reference ``image``: MediaPipe's segmentation of frame 0 of ``fit`` joined with
    the fitted body's silhouette (computed only then)."""
    mask = None
    if spec.kind == "inpaint":
        vertices = posed_vertices(fit, body, slice(0, 1))[0]
        camera = fit.camera
        silhouette = MeshRasterizer(body.faces.numpy(), (camera.height, camera.width), frames_per_pass=1)(
            vertices, camera.to_cameras()).mask[0]
        mask = silhouette | detections.full_mask(0)
    return background_plate(spec, size, image, mask)


# -- rendering ------------------------------------------------------------------------------

def textured_renderer(body: BodyModel, texture: np.ndarray, camera: CameraIntrinsics,
                      batch: int = RENDER_BATCH) -> TexturedRenderer:
    """A renderer of ``body`` with ``texture`` at ``camera``'s image size."""
    return TexturedRenderer(body.faces.numpy(), body.face_parts.numpy(), body.corner_uvs(), texture,
                            (camera.height, camera.width), frames_per_pass=batch)


def path_cameras(path: CameraPath, fit: BodyFit, camera: CameraIntrinsics, views: np.ndarray) -> PerspectiveCameras:
    """One camera per frame of ``fit``: frame ``k`` sees ``views[k]`` of ``path``, turned
    about the frame's root joint (``params.transl``), with ``camera``'s intrinsics (the
    reference camera is ``camera``'s frame: world = camera frame, as fits have it)."""
    azimuth, elevation, distance = (values[views] for values in path.angles())
    centres = fit.params.transl.detach().cpu().numpy().astype(np.float64)
    R, T = view_extrinsics(azimuth, elevation, distance, centre=centres)
    return PerspectiveCameras(R, T, (camera.fx, camera.fy), (camera.height, camera.width),
                              principal_point=(camera.cx, camera.cy))


def rendered_frames(fit: BodyFit, body: BodyModel, renderer: TexturedRenderer, cameras: PerspectiveCameras,
                    desc: str = "render") -> Iterator[Tuple[range, TexturedMaps, np.ndarray]]:
    """Yield (frames, TexturedMaps, projected keypoints (B, K, 2)) for every batch of
    ``fit``'s frames seen by ``cameras`` (one per frame, or one for all)."""
    batch = renderer.rasterizer.frames_per_pass
    maps = TexturedMaps.empty(batch, renderer.image_size)
    for start in tqdm(range(0, fit.num_frames, batch), desc=desc, unit="batch", leave=False):
        frames = range(start, min(start + batch, fit.num_frames))
        vertices, keypoints = posed_vertices(fit, body, slice(frames.start, frames.stop))
        views = cameras[np.asarray(frames) if len(cameras) > 1 else np.zeros(len(frames), np.intp)]
        rendered = renderer(vertices, views, out=maps)
        uv, _ = views.project(keypoints)
        yield frames, rendered, uv


# -- the command -------------------------------------------------------------------------

def render_animation(folder: Path, fit: BodyFit, body: BodyModel, renderer: TexturedRenderer,
                     cameras: PerspectiveCameras, *, plate: Optional[np.ndarray] = None,
                     video_name: str = "animation.mp4", fps=DEFAULT_FPS, guidance: bool = False) -> None:
    """Render ``fit`` textured, seen by ``cameras`` (one per frame, or one for all), into
    ``folder``: ``textured/``, the video ``video_name`` composited over ``plate`` (when
    given) and, with ``guidance``, the five guidance folders (replacing any there)."""
    with contextlib.ExitStack() as stack:
        textured = stack.enter_context(PngSequenceWriter(folder / "textured"))
        video = None if plate is None else stack.enter_context(VideoWriter(folder / video_name, fps=fps))
        writers = {name: stack.enter_context(PngSequenceWriter(folder / name, overwrite=True))
                   for name in (GUIDANCE_TYPES if guidance else ())}
        for frames, maps, keypoints in rendered_frames(fit, body, renderer, cameras, desc="render textured"):
            skeletons = skeleton_images(keypoints, renderer.image_size) if guidance else None
            for i in range(len(frames)):
                textured.write(maps.colour[i])
                if video is not None:
                    video.write(composite(maps.colour[i], maps.alpha[i], plate))
                if guidance:
                    for name, image in (("depth", maps.depth[i]), ("normal", maps.normal[i]),
                                        ("semantic_map", maps.semantic[i]), ("mask", maps.mask[i]),
                                        ("dwpose", skeletons[i])):
                        writers[name].write(image)


def generate_with_champ(folder: Path, reference_image: np.ndarray, settings: AnimationSettings, out_path: Path,
                        fps) -> Path:
    """Champ's diffusion generator on a finished guidance ``folder``."""
    from champ3d.generators.champ import generate_video

    return generate_video(GuidanceFolder(folder), reference_image, settings.weights, out_path, fps=fps,
                          config=settings.generator_config)


def animate(ref: Path, driving: Path, out: Path, body: BodyModel, settings: AnimationSettings,
            overwrite: bool = False) -> dict:
    """The whole ``champ3d animate`` command (module docstring); returns its summary."""
    from champ3d.guidance import make_guidance

    check_settings(settings)
    started = time.perf_counter()
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        tmp = Path(tmp)
        guidance = make_guidance(ref, driving, tmp, body, size=settings.size, max_frames=settings.max_frames,
                                 align_settings=settings.align, overwrite=True)
        fps = GuidanceFolder(tmp).frame_rate or DEFAULT_FPS
        rendered = animate_guidance(tmp, tmp, read_image(ref), body, settings, fps, where=ref)
        summary = {
            "frames": rendered["frames"],
            "fps": str(fps),
            "size": rendered["size"],
            "generator": settings.generator,
            "background": background_record(settings.background),
            "camera_path": None if settings.camera_path is None else asdict(settings.camera_path),
            "texture": rendered["texture"],
            "seconds": round(time.perf_counter() - started, 2),
        }
        (tmp / "animation.json").write_text(json.dumps(summary, indent=2))
    return summary | {"guidance": guidance}


def animate_guidance(guidance_dir: Path, out: Path, reference_image: np.ndarray, body: BodyModel,
                     settings: AnimationSettings, fps, *, video_name: str = "animation.mp4", where=None) -> dict:
    """Animate a finished guidance folder (its ``fits/reference`` and ``fits/aligned``) into
    ``out`` (which may be the same folder): ``texture.png``, ``textured/``, the background
    plate and ``video_name`` for the mesh generator, Champ's video for the champ generator,
    and with a camera path the guidance folders re-rendered from the moving camera. ``where``
    names the reference in errors. Returns the frame count, size and texture record."""
    ref_fit, ref_detections, _ = load_fit(Path(guidance_dir) / "fits" / "reference")
    aligned, _, _ = load_fit(Path(guidance_dir) / "fits" / "aligned")
    camera = output_camera(aligned.camera, settings.size)
    reference = reference_texture(reference_image, ref_fit, ref_detections, body, settings.atlas_size,
                                  settings.texture_views, settings.infill_weights, where=where)
    texture, texture_info = reference.texture, reference.info
    write_png(out / "texture.png", texture)
    write_png(out / "texture_sources.png", reference.sources)
    renderer = textured_renderer(body, texture, camera)
    if settings.camera_path is None:
        cameras = camera.to_cameras()
    else:
        path = settings.camera_path
        cameras = path_cameras(path, aligned, camera, path.view_of_frame(np.arange(aligned.num_frames)))
    plate = None
    if settings.generator == "mesh":
        plate = reference_plate(settings.background, (camera.height, camera.width), reference_image, ref_fit,
                                ref_detections, body)
        write_png(out / "background.png", plate)
    render_animation(out, aligned, body, renderer, cameras, plate=plate, video_name=video_name, fps=fps,
                     guidance=settings.camera_path is not None)
    if settings.generator == "champ":
        generate_with_champ(out if settings.camera_path is not None else guidance_dir, reference_image, settings,
                            out / video_name, fps)
    return {"frames": aligned.num_frames, "size": [camera.height, camera.width], "texture": texture_info}


def background_record(spec: BackgroundSpec) -> dict:
    return {"kind": spec.kind, "colour": spec.colour, "image": None if spec.image is None else str(spec.image)}


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a uint8 RGB image (atomic via the enclosing output folder)."""
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"{path}: cannot write the image")
