"""Training clips: a guidance folder plus the video's own frames.

Layout of a clip folder (Champ's training layout, ``<video>/images`` next to the guidance)::

    CLIP/images/NNNN.png   ground-truth RGB frames, at the guidance size
    CLIP/<type>/NNNN.png   guidance, as read by :class:`champ3d.guidance_folder.GuidanceFolder`
    CLIP/mask/NNNN.png     optional; when present the semantic map is blanked outside it

Frame ``i`` of ``images/`` and frame ``i`` of every guidance type show the same moment, so
the guidance must be rendered in the video's own camera with the filmed person's own shape:
``champ3d guidance --keep-driver-shape --keep-driver-camera`` with the video as both the
driving input and (any frame of it as) the reference. :func:`write_training_clip` then adds
the frames.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.guidance_folder import GuidanceFolder, read_frame
from champ3d.io.atomic import atomic_output_dir
from champ3d.io.frames import open_frames
from champ3d.io.writers import PngSequenceWriter

IMAGES = "images"
MASK = "mask"
SEMANTIC_MAP = "semantic_map"
ALIGNED_FIT_META = Path("fits") / "aligned.json"
_FRAME_NAME = re.compile(r"^\d+\.png$", re.IGNORECASE)


class TrainingClip:
    """A validated clip folder. ``num_frames`` frames of ``size`` (H, W) for ``guidance_types``."""

    def __init__(self, path: str | Path, guidance_types: Sequence[str]):
        self.path = Path(path)
        self.guidance_types = tuple(guidance_types)
        with_mask = SEMANTIC_MAP in self.guidance_types and (self.path / MASK).is_dir()
        self.guidance = GuidanceFolder(self.path, [*self.guidance_types, *([MASK] if with_mask else [])])
        images = self.path / IMAGES
        if not images.is_dir():
            raise Champ3dInputError(images, "ground-truth frame folder missing (write it with write_training_clip)")
        self._images = sorted((f for f in images.iterdir() if _FRAME_NAME.match(f.name)), key=lambda f: int(f.stem))
        if len(self._images) != self.guidance.num_frames:
            raise Champ3dInputError(
                self.path, f"frame counts disagree: {IMAGES}/ holds {len(self._images)}, the guidance {self.guidance.num_frames}"
            )
        for f in (self._images[0], self._images[-1]):
            with Image.open(f) as image:
                if (image.height, image.width) != self.guidance.size:
                    h, w = self.guidance.size
                    raise Champ3dInputError(f, f"frame is {image.height}x{image.width}, the guidance is {h}x{w}")
        self.num_frames = self.guidance.num_frames
        self.size = self.guidance.size

    def image(self, index: int) -> np.ndarray:
        """Ground-truth frame ``index``: uint8 (H, W, 3) RGB."""
        return read_frame(self._images[index], self.size)

    def guidance_frame(self, guidance_type: str, index: int) -> np.ndarray:
        """Guidance frame ``index``: uint8 (H, W, 3) RGB; the semantic map is zero where the mask is."""
        frame = self.guidance.read(guidance_type, index)
        if guidance_type == SEMANTIC_MAP and MASK in self.guidance.types:
            frame = np.where(self.guidance.read(MASK, index) > 0, frame, 0).astype(np.uint8)
        return frame


def find_clips(entries: Sequence[str | Path], guidance_types: Sequence[str]) -> list[TrainingClip]:
    """The clips of ``entries``: each a clip folder (it has ``images/``) or a folder of clip folders."""
    clips = []
    for entry in map(Path, entries):
        if (entry / IMAGES).is_dir():
            clips.append(TrainingClip(entry, guidance_types))
        elif entry.is_dir():
            found = sorted(p for p in entry.iterdir() if (p / IMAGES).is_dir())
            if not found:
                raise Champ3dInputError(entry, f"no clip folders (folders with {IMAGES}/) in it")
            clips.extend(TrainingClip(p, guidance_types) for p in found)
        else:
            raise Champ3dInputError(entry, "clip folder not found")
    return clips


def write_training_clip(video: str | Path, guidance_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Make the clip folder ``out_dir`` from a guidance folder and the video it was rendered from.

    Copies the guidance type folders (and ``qc.json``, which records the fps) and writes
    the first ``num_frames`` video frames, resized to the guidance size with area
    averaging, as ``images/NNNN.png``. A champ3d guidance folder that was rendered with the
    reference's shape or camera (its ``fits/aligned.json`` says so) is refused: its maps
    would not line up with the frames. The folder is written under a temporary name and
    renamed when complete.
    """
    video, guidance_dir, out_dir = Path(video), Path(guidance_dir), Path(out_dir)
    guidance = GuidanceFolder(guidance_dir)
    _check_rendered_in_video_camera(guidance_dir)
    height, width = guidance.size
    source = open_frames(video, max_frames=guidance.num_frames)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        tmp = Path(tmp)
        for name in guidance.types:
            shutil.copytree(guidance_dir / name, tmp / name)
        if (guidance_dir / "qc.json").is_file():
            shutil.copy2(guidance_dir / "qc.json", tmp / "qc.json")
        with PngSequenceWriter(tmp / IMAGES) as images:
            for frame in source:
                images.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
            written = images.num_frames
        if written != guidance.num_frames:
            raise Champ3dInputError(video, f"has {written} frames, the guidance {guidance.num_frames}")
    return out_dir


def _check_rendered_in_video_camera(guidance_dir: Path) -> None:
    meta_path = guidance_dir / ALIGNED_FIT_META
    if not meta_path.is_file():
        return  # not made by champ3d (e.g. a Champ-format folder): nothing records how it was rendered
    try:
        align = json.loads(meta_path.read_text()).get("align", {})
    except (OSError, ValueError) as exc:
        raise Champ3dInputError(meta_path, f"unreadable ({exc})") from exc
    if not (align.get("keep_driver_shape") and align.get("keep_driver_camera")):
        raise Champ3dInputError(
            guidance_dir,
            "guidance was rendered with the reference's shape or camera, so it does not line up with the video's "
            "frames; make it with --keep-driver-shape --keep-driver-camera",
        )

