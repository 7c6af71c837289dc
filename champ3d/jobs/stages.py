"""The stages of a case and how each result is keyed.

Stages, in order (each needs the results of those it names as upstream)::

    fit_reference   the reference frame (ref, or frame ref_frame of a video) and its body fit
    fit_driving     the body fit of the first max_frames driving frames
    guidance        align the fits, render Champ's guidance folder (champ3d.guidance)
    generate        the generated video (GENERATORS)
    evaluate        ground truth vs the generated frames under the case's protocol
                    (only for cases with ``gt``)

A stage result is keyed by the sha256 of: the stage's name and ``version``, the versions of
the packages that shape results (:func:`environment`, champ3d's own included), the stage's
settings (only those it reads), the content hashes of its input files and the keys of its
upstream results. Paths and case names are not part of a key unless a stage writes them
into its result, so the fit of a driving video is computed once for every case that drives
with it at the same settings. The code itself is not hashed: whoever changes what a stage
computes raises that stage's ``version`` (a released champ3d changes its package version).

Determinism: the fitter and the renderer draw no random numbers and the generators are
seeded with the case's ``seed``, so a stage gives the same bytes in every process (tested
across processes, and across 1 and 2 torch threads on one machine), with one exception:
evaluation records hold a timestamp and the output folder's path (mp4 files are
deterministic: :class:`champ3d.io.VideoWriter` encodes without macroblock-tree rate
control). Times, process ids and hosts go to the manifests (:mod:`champ3d.jobs.cache`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from champ3d.errors import Champ3dInputError
from champ3d.jobs.generators import GENERATORS, VIDEO
from champ3d.jobs.spec import CaseSpec
from champ3d.provenance import package_versions

BODY_BACKEND = "anny"
_VERSIONED = ("champ3d", "torch", "numpy", "mediapipe", "anny", "opencv-contrib-python", "av", "scikit-image")


def environment() -> dict[str, str]:
    """Versions of the packages whose behaviour is part of every result (and of every key)."""
    return package_versions(_VERSIONED)


class StageContext:
    """What running stages share within one process: the body model, built on first use."""

    def __init__(self):
        self._body = None

    @property
    def body(self):
        if self._body is None:
            from champ3d.body.anny_body import AnnyBody

            self._body = AnnyBody()
        return self._body


@dataclass(frozen=True)
class Stage:
    name: str
    version: int
    upstream: tuple[str, ...]
    settings: Callable[[CaseSpec], dict]
    inputs: Callable[[CaseSpec], dict[str, Path]]  # files whose content goes into the key
    run: Callable[[StageContext, CaseSpec, dict[str, Path], Path], dict]  # (ctx, case, upstream folders, out)
    applies: Callable[[CaseSpec], bool] = lambda case: True


# ------------------------------------------------------------------------------ fits

def _fit_settings_record(settings) -> dict:
    record = dataclasses.asdict(settings)
    record.update({k: list(v) for k, v in record.items() if isinstance(v, tuple)})
    return record


def _image_fit_settings(case: CaseSpec):
    from champ3d.fitting.fitter import FitSettings

    return case.fit_settings(FitSettings.for_image())


def _video_fit_settings(case: CaseSpec):
    from champ3d.fitting.fitter import FitSettings

    return case.fit_settings(FitSettings())


def _is_still_image(path: Path) -> bool:
    from champ3d.io.images import IMAGE_SUFFIXES

    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def reference_frame(case: CaseSpec) -> np.ndarray:
    """The case's reference as uint8 HxWx3 RGB: the image, or frame ``ref_frame`` of a clip."""
    from champ3d.io.frames import open_frames
    from champ3d.io.images import read_image

    if _is_still_image(case.ref):
        return read_image(case.ref)
    for index, frame in enumerate(open_frames(case.ref, max_frames=case.ref_frame + 1)):
        if index == case.ref_frame:
            return frame
    raise Champ3dInputError(f"{case.name}.ref_frame", f"{case.ref} has no frame {case.ref_frame}")


def _save(folder: Path, fitted) -> None:
    from champ3d.fitting.fit_io import save_fit

    save_fit(folder / "fit", fitted.fit, fitted.detections, {"media": fitted.info})


def load_fitted(folder: Path):
    from champ3d.fitting.fit_io import load_fit
    from champ3d.guidance import FittedMedia

    fit, detections, meta = load_fit(folder / "fit")
    return FittedMedia(fit, detections, meta["media"])


def _run_fit_reference(ctx: StageContext, case: CaseSpec, upstream: dict, out: Path) -> dict:
    from champ3d.guidance import fit_media

    image = reference_frame(case)
    png = out / "reference.png"  # lossless: the pixels the fit saw, read again by later stages
    cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    fitted = fit_media(png, ctx.body, settings=_image_fit_settings(case))
    fitted.info["source"] = str(case.ref) if _is_still_image(case.ref) else f"{case.ref} frame {case.ref_frame}"
    _save(out, fitted)
    return {"median_error_2d": fitted.info["median_error_2d"], "image_size": fitted.info["image_size"]}


def _run_fit_driving(ctx: StageContext, case: CaseSpec, upstream: dict, out: Path) -> dict:
    from champ3d.guidance import fit_media

    fitted = fit_media(case.driving, ctx.body, max_frames=case.max_frames, settings=_video_fit_settings(case))
    _save(out, fitted)
    return {key: fitted.info[key] for key in ("num_frames", "frames_interpolated", "median_error_2d", "fps")}


# ------------------------------------------------------------------------------ guidance

def _run_guidance(ctx: StageContext, case: CaseSpec, upstream: dict, out: Path) -> dict:
    from champ3d.guidance import guidance_from_fits
    from champ3d.io.images import read_image

    summary = guidance_from_fits(
        load_fitted(upstream["fit_reference"]), load_fitted(upstream["fit_driving"]),
        read_image(upstream["fit_reference"] / "reference.png"), case.driving, out / "guidance", ctx.body,
        size=case.size, max_frames=case.max_frames, align_settings=case.align_settings())
    return {"frames": summary["frames"]["depth"], "guidance_size": summary["guidance_size"],
            "driving_mask_iou_median": summary["driving_mask_iou"]["median"],
            "reference_mask_iou": summary["reference_mask_iou"]}


# ------------------------------------------------------------------------------ generate

def _run_generate(ctx: StageContext, case: CaseSpec, upstream: dict, out: Path) -> dict:
    from champ3d.animation import DEFAULT_FPS
    from champ3d.guidance_folder import GuidanceFolder
    from champ3d.io.images import read_image

    folder = GuidanceFolder(upstream["guidance"] / "guidance")
    reference = read_image(upstream["fit_reference"] / "reference.png")
    fps = folder.frame_rate or DEFAULT_FPS
    GENERATORS[case.generator].generate(ctx.body, case, folder, reference, out, fps)
    return {"frames": folder.num_frames, "size": list(folder.size), "fps": str(fps)}


def _generate_settings(case: CaseSpec) -> dict:
    return {"generator": case.generator, "settings": GENERATORS[case.generator].settings(case, case.name)}


# ------------------------------------------------------------------------------ evaluate

def _run_evaluate(ctx: StageContext, case: CaseSpec, upstream: dict, out: Path) -> dict:
    from champ3d.jobs.evaluation import evaluate_case

    return evaluate_case(ctx.body, case, upstream["generate"] / VIDEO, upstream["guidance"] / "guidance", out)


def _evaluate_settings(case: CaseSpec) -> dict:
    from champ3d.jobs.evaluation import case_metric_settings

    return case_metric_settings(case)


def _evaluate_inputs(case: CaseSpec) -> dict[str, Path]:
    from champ3d.jobs.evaluation import case_metric_inputs

    return case_metric_inputs(case)


STAGES: tuple[Stage, ...] = (
    Stage("fit_reference", 1, (),
          lambda c: {"ref_frame": None if _is_still_image(c.ref) else c.ref_frame, "body": BODY_BACKEND,
                     "fit": _fit_settings_record(_image_fit_settings(c))},
          lambda c: {"ref": c.ref}, _run_fit_reference),
    Stage("fit_driving", 1, (),
          lambda c: {"max_frames": c.max_frames, "body": BODY_BACKEND,
                     "fit": _fit_settings_record(_video_fit_settings(c))},
          lambda c: {"driving": c.driving}, _run_fit_driving),
    Stage("guidance", 1, ("fit_reference", "fit_driving"),
          lambda c: {"size": c.size, "align": dataclasses.asdict(c.align_settings())},
          lambda c: {}, _run_guidance),
    Stage("generate", 1, ("fit_reference", "guidance"), _generate_settings,
          lambda c: GENERATORS[c.generator].inputs(c), _run_generate),
    Stage("evaluate", 1, ("guidance", "generate"), _evaluate_settings, _evaluate_inputs, _run_evaluate,
          applies=lambda c: c.gt is not None),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def case_stages(case: CaseSpec) -> list[Stage]:
    return [stage for stage in STAGES if stage.applies(case)]
