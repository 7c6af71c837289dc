"""Reading a guidance folder: champ3d's own output or a Champ-format motion folder.

Layout (written by :func:`champ3d.guidance.make_guidance`; Champ's
``example_data/motions/<motion>/`` holds the same type folders)::

    DIR/<type>/NNNN.png   one PNG per frame for each type in KNOWN_TYPES present
    DIR/ref.png           optional: the reference image at the guidance size
    DIR/qc.json           optional: champ3d's QC summary; ``driving.frame_rate`` is the
                          driving video's exact frame rate (a fraction string)

A folder is valid when at least one guidance type is present, every present type holds the
same number of frames, and all frames of all types have one size. Frames are read on
demand (:meth:`GuidanceFolder.read`), never all at once.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from champ3d.errors import Champ3dInputError

GUIDANCE_TYPES = ("depth", "normal", "semantic_map", "dwpose", "mask")  # what `champ3d guidance` writes
TEXTURED_TYPE = "textured"  # the textured reference body (RGB on black), written by `champ3d animate`
KNOWN_TYPES = GUIDANCE_TYPES + (TEXTURED_TYPE,)
_FRAME_NAME = re.compile(r"^\d+\.(png|jpg|jpeg)$", re.IGNORECASE)


class GuidanceFolder:
    """A validated guidance folder. ``types`` are the guidance types present, in
    KNOWN_TYPES order (or those asked for); ``size`` is (H, W); ``frame_rate`` is None
    when the folder does not record it."""

    def __init__(self, path, types: Optional[Sequence[str]] = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise Champ3dInputError(self.path, "guidance folder not found")
        present = [t for t in KNOWN_TYPES if (self.path / t).is_dir()]
        wanted = list(types) if types is not None else present
        if not wanted:
            raise Champ3dInputError(self.path, f"no guidance type folder found (expected some of {KNOWN_TYPES})")
        missing = [t for t in wanted if t not in present]
        if missing:
            raise Champ3dInputError(self.path / missing[0], "guidance type folder missing")
        self.types = tuple(wanted)
        self._files = {t: self._frame_files(self.path / t) for t in self.types}
        counts = {t: len(files) for t, files in self._files.items()}
        if len(set(counts.values())) != 1:
            detail = ", ".join(f"{t}: {n}" for t, n in counts.items())
            raise Champ3dInputError(self.path, f"guidance types have different frame counts ({detail})")
        self.num_frames = next(iter(counts.values()))
        if self.num_frames == 0:
            raise Champ3dInputError(self.path / self.types[0], "no frames")
        sizes = {}
        for t in self.types:
            for f in (self._files[t][0], self._files[t][-1]):
                with Image.open(f) as image:
                    sizes[f] = (image.height, image.width)
        if len(set(sizes.values())) != 1:
            detail = ", ".join(f"{f.relative_to(self.path)}: {h}x{w}" for f, (h, w) in sizes.items())
            raise Champ3dInputError(self.path, f"guidance frames differ in size ({detail})")
        self.size = next(iter(sizes.values()))

    @staticmethod
    def _frame_files(folder: Path) -> list[Path]:
        return sorted((f for f in folder.iterdir() if _FRAME_NAME.match(f.name)), key=lambda f: int(f.stem))

    def __len__(self) -> int:
        return self.num_frames

    @property
    def frame_rate(self) -> Optional[str]:
        """The driving video's exact frame rate (e.g. ``"30000/1001"``), as qc.json records it."""
        qc = self.path / "qc.json"
        if not qc.is_file():
            return None
        return json.loads(qc.read_text(encoding="utf-8")).get("driving", {}).get("frame_rate")

    @property
    def reference_image(self) -> Optional[Path]:
        ref = self.path / "ref.png"
        return ref if ref.is_file() else None

    def frame_path(self, guidance_type: str, index: int) -> Path:
        return self._files[guidance_type][index]

    def read(self, guidance_type: str, index: int) -> np.ndarray:
        """Frame ``index`` of ``guidance_type`` (see :func:`read_frame`)."""
        return read_frame(self._files[guidance_type][index], self.size)


def read_frame(path: Path, size: tuple[int, int]) -> np.ndarray:
    """One frame file of a frame folder as uint8 (H, W, 3) RGB (grey frames are repeated over
    the three channels, as Champ's loader converts them); it must be ``size`` (H, W)."""
    try:
        with Image.open(path) as image:
            frame = np.asarray(image.convert("RGB"))
    except OSError as error:
        raise Champ3dInputError(path, f"unreadable frame ({error})") from error
    if frame.shape[:2] != tuple(size):
        raise Champ3dInputError(path, f"frame is {frame.shape[0]}x{frame.shape[1]}, the folder's frames are "
                                      f"{size[0]}x{size[1]}")
    return frame
