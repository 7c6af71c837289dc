"""The generators a job can name (``generator:``), as the ``generate`` stage runs them.

- ``mesh`` (weight-free, :mod:`champ3d.animation`): the reference photo's texture baked
  onto the reference fit (``atlas_size``) and fused with ``texture_views`` (every
  ``texture_every``-th frame of a video; :mod:`champ3d.appearance`) and in-filled, by the
  ``infill_weights`` inpainting model when given, the aligned body
  rendered textured through the guidance camera, or along ``camera_path``
  (:mod:`render.camera_paths`), and composited over the ``background`` (``inpaint``,
  ``#RRGGBB`` or an image file; :mod:`champ3d.background`);
- ``champ`` (:mod:`champ3d.generators.champ`): Champ's diffusion pipeline on the guidance
  folder, with the ``weights`` folder and ``generator_config`` overrides of
  ``configs/generate/champ.yaml``; the case's ``seed`` seeds its noise.

Each entry gives the generator's complete, validated settings for a case (they go into the
stage key, so a changed default recomputes; bad values raise
:class:`champ3d.errors.Champ3dInputError` naming ``where``, the case's field prefix), the
input files whose content the result depends on, and the function writing ``VIDEO`` (one
frame per guidance frame) into the stage's result folder from the guidance folder and the
full-size reference image. The mesh generator also keeps ``texture.png``,
``background.png`` and the textured body over black (``textured/NNNN.png``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from champ3d.errors import Champ3dInputError

#: The generated video in the generate stage's result folder.
VIDEO = "video.mp4"
# Case keys each generator reads, beyond those every case has.
_OWN_KEYS = {"mesh": ("atlas_size", "background", "camera_path", "texture_views", "texture_every", "texture_refine",
                      "infill_weights"),
             "champ": ("weights", "generator_config")}


@dataclass(frozen=True)
class JobGenerator:
    settings: Callable[..., dict]  # (case, where) -> complete settings
    inputs: Callable[..., dict[str, Path]]  # (case) -> files whose content the result depends on
    generate: Callable[..., None]  # (body, case, guidance folder, reference image, result folder, fps)


def check_generator_keys(name: str, given: set[str], where: str) -> None:
    """Refuse keys meant for another generator (they would be silently ignored)."""
    for other, keys in _OWN_KEYS.items():
        for key in keys:
            if other != name and key in given and key not in _OWN_KEYS[name]:
                raise Champ3dInputError(f"{where}.{key}", f"only the {other} generator reads it; this case uses {name}")


# -- mesh ---------------------------------------------------------------------------------

def _background(case, where: str):
    from champ3d.background import parse_background

    field = f"{where}.background"
    try:
        return parse_background(case.background, where=field)
    except Champ3dInputError as error:
        raise Champ3dInputError(field, error.problem if error.where == field else str(error)) from error


def _camera_path(case, where: str):
    from render.camera_paths import camera_path_from_text

    if case.camera_path is None:
        return None
    field = f"{where}.camera_path"
    try:
        return camera_path_from_text(case.camera_path, where=field)
    except Champ3dInputError as error:
        raise Champ3dInputError(field, str(error) if error.where != field else error.problem) from error


def _mesh_settings(case, where: str) -> dict:
    from texture.atlas import check_atlas_size

    try:
        atlas_size = check_atlas_size(case.atlas_size)
    except Champ3dInputError as error:
        raise Champ3dInputError(f"{where}.atlas_size", error.problem) from error
    spec = _background(case, where)
    path = _camera_path(case, where)
    if path is not None and case.gt is not None:
        raise Champ3dInputError(f"{where}.camera_path", "a moving camera cannot be evaluated against the ground "
                                                        "truth's fixed camera; drop gt or camera_path")
    if case.infill_weights is not None:
        from texture.learned_infill import check_checkpoint_dir

        try:
            check_checkpoint_dir(case.infill_weights)
        except Champ3dInputError as error:
            raise Champ3dInputError(f"{where}.infill_weights", error.problem) from error
    return {"atlas_size": atlas_size, "background": {"kind": spec.kind, "colour": spec.colour},
            "camera_path": None if path is None else dataclasses.asdict(path),
            "texture_views": len(case.texture_views), "texture_every": case.texture_every,
            "texture_refine": case.texture_refine,
            "infill": "weight-free" if case.infill_weights is None else "learned"}


def _mesh_inputs(case) -> dict[str, Path]:
    spec = _background(case, case.name)
    inputs = {"background": spec.image} if spec.image is not None else {}
    inputs |= {} if case.infill_weights is None else {"infill_weights": case.infill_weights}
    return inputs | {f"texture_view_{i}": path for i, path in enumerate(case.texture_views)}


def _mesh_generate(body, case, folder, reference: np.ndarray, out: Path, fps) -> None:
    from champ3d.animation import AnimationSettings, animate_guidance
    from champ3d.appearance import TextureViews

    settings = AnimationSettings(size=case.size, atlas_size=case.atlas_size, background=_background(case, case.name),
                                 camera_path=_camera_path(case, case.name),
                                 texture_views=TextureViews(case.texture_views, case.texture_every, case.texture_refine),
                                 infill_weights=case.infill_weights)
    animate_guidance(folder.path, out, reference, body, settings, fps, video_name=VIDEO, where=case.ref)


# -- champ --------------------------------------------------------------------------------

def _champ_config(case) -> dict:
    return {**case.generator_config, "seed": case.seed}


def _champ_settings(case, where: str) -> dict:
    from champ3d.generators.champ import load_settings

    if case.weights is None:
        raise Champ3dInputError(f"{where}.weights", "the champ generator needs a weights folder")
    try:
        settings = dataclasses.asdict(load_settings(_champ_config(case)))
    except Champ3dInputError as error:
        raise Champ3dInputError(f"{where}.generator_config", str(error)) from error
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def _champ_generate(body, case, folder, reference: np.ndarray, out: Path, fps) -> None:
    from champ3d.generators.champ import generate_video

    generate_video(folder, reference, case.weights, out / VIDEO, fps=fps, config=_champ_config(case))


GENERATORS: dict[str, JobGenerator] = {
    "mesh": JobGenerator(_mesh_settings, _mesh_inputs, _mesh_generate),
    "champ": JobGenerator(_champ_settings, lambda case: {"weights": case.weights}, _champ_generate),
}
