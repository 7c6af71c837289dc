"""The reference person's appearance: a filled UV texture (:mod:`texture.atlas` convention).

The reference photo is baked through its own fit (:mod:`texture.bake`). When more views of
the same person are given (:class:`TextureViews`: other photos, or videos such as a
turn-around clip or, in self-reenactment, the driving video itself), each is fitted
(:func:`champ3d.guidance.fit_media`, with the body held tight inside the person's
segmentation: :meth:`~champ3d.fitting.fitter.FitSettings.tight`) and baked through its own fit (every ``every``-th
frame of a video, at most :data:`MAX_VIDEO_BAKES` frames spread over it; frames where the
person was lost are skipped), and all bakes are fused per texel with the reference's
(:mod:`texture.fusion`, a confidence-weighted robust median). With ``refine``, each baked
frame's pose is first refined photometrically (:mod:`champ3d.fitting.photometric`) against
the fusion of the reference and all other bakes over the texels it sees, then re-baked, so
that frames fitted a few pixels apart stop blurring each other. Texels the reference photo
sees well (confidence at least :data:`REFERENCE_FIRST`) keep the photo's colours: the
person should look like the photo, and a fusion of many views, each fitted a little
differently, blurs detail such as the face. In-filling (:mod:`texture.infill`) then only
completes what no view saw: without weights, or with the user's Stable Diffusion
inpainting checkpoint (``infill_weights``; :mod:`texture.learned_infill`).

A folder of images is read as a video (frames of one clip); give unrelated photos as
separate files, so that each is fitted on its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from champ3d.body.base import BodyModel, BodyParams
from champ3d.detect.mediapipe_person import PersonDetections
from champ3d.errors import Champ3dInputError
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFit
from champ3d.fitting.photometric import PhotometricRefiner
from champ3d.io.frames import open_frames
from texture.atlas import UVAtlas
from texture.bake import TextureSample, bake_texture
from texture.fusion import fuse_textures
from texture.infill import fill_texture

#: Bakes kept from one video (each holds a float32 atlas: 16 MiB at 1024 texels; with
#: refinement, also its frame).
MAX_VIDEO_BAKES = 48

#: Reference-bake confidence (the cosine of the viewing angle) from which the reference's
#: colour is kept over the fusion of all views.
REFERENCE_FIRST = 0.5

#: RGB of each texel source in :attr:`ReferenceTexture.sources` (texels outside islands black).
SOURCE_COLOURS = {"photo": (40, 170, 60), "views": (50, 110, 240), "filled": (230, 70, 50)}


@dataclass
class ReferenceTexture:
    """The filled uint8 (A, A, 3) ``texture``; ``sources``, a uint8 (A, A, 3) picture of
    where each texel's colour came from (:data:`SOURCE_COLOURS`: the reference photo alone,
    the fusion of all views, the in-filling); ``info``, numbers about it (JSON-ready)."""

    texture: np.ndarray
    sources: np.ndarray
    info: dict


@dataclass(frozen=True)
class TextureViews:
    """More views of the reference person to fuse into its texture."""

    paths: Tuple[Path, ...] = ()
    every: int = 10  # bake every n-th frame of a video
    refine: bool = False  # refine each baked frame's pose photometrically before fusing

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise Champ3dInputError("--texture-every", f"must be a positive integer, got {self.every!r}")


def frames_to_bake(found: np.ndarray, every: int, limit: int = MAX_VIDEO_BAKES) -> np.ndarray:
    """Indices of the frames of a clip to bake: every ``every``-th frame where the person
    was found (``found``, (T,) bool), thinned evenly to at most ``limit``."""
    candidates = np.flatnonzero(found[::every]) * every
    if len(candidates) > limit:
        candidates = candidates[np.unique(np.linspace(0, len(candidates) - 1, limit).round().astype(int))]
    return candidates


@dataclass
class BakedView:
    """One baked frame: its one-frame fit (``params``, ``camera``), its bake, and the image
    and person mask it was baked from (None unless kept for refinement)."""

    params: BodyParams
    camera: CameraIntrinsics
    sample: TextureSample
    image: Optional[np.ndarray] = None
    person_mask: Optional[np.ndarray] = None


def bake_view(image: np.ndarray, person_mask: np.ndarray, params: BodyParams, camera: CameraIntrinsics,
              body: BodyModel, atlas: UVAtlas, keep_frame: bool = False) -> BakedView:
    with torch.no_grad():
        vertices = body(params).vertices[0].numpy()
    sample = bake_texture(image, person_mask, vertices, camera, atlas)
    return BakedView(params, camera, sample, *((image, person_mask) if keep_frame else ()))


def bake_fitted(path, fit: BodyFit, detections: PersonDetections, body: BodyModel, atlas: UVAtlas,
                frames: Sequence[int], keep_frames: bool = False) -> List[BakedView]:
    """Bake ``frames`` of the media at ``path`` (streamed) through ``fit``; with
    ``keep_frames``, each view keeps its image and mask (for :func:`refine_views`)."""
    wanted = set(int(i) for i in frames)
    if not wanted:
        return []
    views = []
    source = open_frames(path, max_frames=max(wanted) + 1)
    for index, image in enumerate(tqdm(source, desc=f"bake {Path(path).name}", unit="frame", leave=False)):
        if index in wanted:
            views.append(bake_view(image, detections.full_mask(index), fit.params.select(slice(index, index + 1)),
                                   fit.camera, body, atlas, keep_frames))
    return views


def refine_views(views: Sequence[BakedView], anchors: Sequence[TextureSample], body: BodyModel,
                 atlas: UVAtlas) -> Tuple[List[BakedView], dict]:
    """Each view refined (:class:`~champ3d.fitting.photometric.PhotometricRefiner`) against
    the fusion of ``anchors`` and the other views over the texels it sees, in turn (a view
    refined earlier is compared in its refined state), and re-baked when its pose changed;
    with a record of how many changed and the mean photometric error before and after."""
    if any(view.image is None for view in views):
        raise ValueError("refine_views needs views baked with their frames kept (keep_frames=True)")
    refiners, views, before, after, changed = {}, list(views), [], [], 0
    for k in tqdm(range(len(views)), desc="refine views", unit="view", leave=False):
        view = views[k]
        seen = view.sample.seen
        others = [*anchors, *(v.sample for j, v in enumerate(views) if j != k)]
        if not others:  # nothing to compare with
            continue
        target = fuse_textures([TextureSample(s.colour, np.where(seen, s.confidence, 0.0)) for s in others])
        if view.camera not in refiners:
            refiners[view.camera] = PhotometricRefiner(body, view.camera)
        refiner = refiners[view.camera]
        result = refiner(view.image, view.person_mask, view.params, target)
        if np.isfinite(result.error_before):  # else no pixel to compare: the view stays as fitted
            before.append(result.error_before)
            after.append(min(result.error_after, result.error_before))
        if result.kept:
            changed += 1
            views[k] = bake_view(view.image, view.person_mask, result.params, view.camera, body, atlas, True)
    mean = lambda errors: float(np.mean(errors)) if errors else None
    record = {"views": len(views), "compared": len(before), "changed": changed,
              "error_before": mean(before), "error_after": mean(after)}
    return views, record


def bake_views(views: TextureViews, body: BodyModel, atlas: UVAtlas) -> Tuple[List[BakedView], List[dict]]:
    """Fit and bake every media of ``views``; the baked frames and, per media, what was used."""
    from champ3d.guidance import fit_media

    baked, records = [], []
    for path in views.paths:
        fitted = fit_media(path, body, tight=True)
        frames = frames_to_bake(fitted.detections.found, views.every)
        if len(frames) == 0:
            raise Champ3dInputError(path, "the person is not found in any frame that would be baked")
        baked += bake_fitted(path, fitted.fit, fitted.detections, body, atlas, frames, keep_frames=views.refine)
        records.append({"path": str(path), "frames": fitted.detections.num_frames, "baked": frames.tolist()})
    return baked, records


def reference_texture(image: np.ndarray, fit: BodyFit, detections: PersonDetections, body: BodyModel,
                      atlas_size: int, views: TextureViews | None = None, infill_weights: Path | None = None,
                      where=None) -> ReferenceTexture:
    """The texture of the reference (frame 0 of ``fit`` on ``image``, fused with ``views``
    when given, in-filled by the model at ``infill_weights`` when given). Its ``info``
    holds the fraction of island texels the reference saw, that all views together saw,
    and the share of island texels from each source."""
    atlas = UVAtlas.from_body(body, atlas_size)
    reference = bake_view(image, detections.full_mask(0), fit.params.select(slice(0, 1)), fit.camera, body,
                          atlas).sample
    seen = atlas.gather(reference.confidence) > 0
    if not seen.any():
        raise Champ3dInputError(where, "the fitted body covers no visible part of the person; nothing to texture")
    info = {"atlas_size": atlas.size, "texels_seen": float(seen.mean())}
    sample, from_photo = reference, reference.seen
    if views is not None and views.paths:
        baked, records = bake_views(views, body, atlas)
        info["views"] = records
        if views.refine:
            baked, info["refinement"] = refine_views(baked, [reference], body, atlas)
        fused = fuse_textures([reference, *(view.sample for view in baked)])
        from_photo = reference.confidence >= REFERENCE_FIRST
        sample = TextureSample(np.where(from_photo[..., None], reference.colour, fused.colour), fused.confidence)
        info["texels_seen_fused"] = float((atlas.gather(sample.confidence) > 0).mean())
    if infill_weights is None:
        texture, info["infill"] = fill_texture(sample, atlas), "weight-free"
    else:
        from texture.learned_infill import LearnedInfiller

        texture, info["infill"] = LearnedInfiller(infill_weights)(sample, atlas), str(infill_weights)
    islands = atlas.island_mask
    masks = {"photo": from_photo & islands, "views": sample.seen & ~from_photo & islands,
             "filled": islands & ~sample.seen}
    sources = np.zeros(texture.shape, np.uint8)
    for name, mask in masks.items():
        sources[mask] = SOURCE_COLOURS[name]
    info["texel_sources"] = {name: float(mask.sum() / islands.sum()) for name, mask in masks.items()}
    return ReferenceTexture(texture, sources, info)


def console_record(info: dict) -> dict:
    """:func:`reference_texture`'s record with each view's baked frames counted, not listed."""
    views = [{**view, "baked": len(view["baked"])} for view in info.get("views", ())]
    return info | ({"views": views} if views else {})
