"""Guidance frames on demand.

The long-video pipeline never holds a whole guidance video: it asks a *guidance source* for
the frames of one window at a time. A source has ``guidance_types``, a length (the frame
count) and is called with a list of frame indices; it returns, per guidance type, a float32
tensor (3, n, H, W) with values ``uint8 / 255`` in [0, 1] (Champ's guidance encoding; no
mean/std normalisation), frames in the order of the indices.

The returned tensors are channel-first views of HxWx3 data (channels-last strides), the
layout Champ's own image loading produces; on CPU this layout selects PyTorch's
channels-last GroupNorm kernel, whose rounding the official outputs carry (see
:func:`champ3d.models.unet_3d.fold_frames`). Frames of another size than the one asked for
are resized with PIL bicubic (the resampling Champ's inference uses for guidance images)
when they are pulled.
"""
from __future__ import annotations

from typing import Mapping, Optional, Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.guidance_folder import GuidanceFolder


class GuidanceSource(Protocol):
    guidance_types: tuple[str, ...]

    def __len__(self) -> int: ...

    def __call__(self, frame_indices: Sequence[int]) -> dict[str, torch.Tensor]: ...


class ArrayGuidanceSource:
    """A source over in-memory uint8 frames: ``frames[type]`` is (F, H, W, 3) RGB;
    ``size=(width, height)``, when given, is the frame size served."""

    def __init__(self, frames: Mapping[str, np.ndarray], size: Optional[tuple[int, int]] = None):
        if not frames:
            raise Champ3dInputError("guidance", "no guidance types given")
        self.guidance_types = tuple(frames)
        self._frames = {name: np.asarray(array) for name, array in frames.items()}
        counts = set()
        for name, array in self._frames.items():
            if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3:
                problem = f"expected uint8 (F, H, W, 3) frames, got {array.dtype} {array.shape}"
                raise Champ3dInputError(f"guidance.{name}", problem)
            counts.add(array.shape[0])
        if len(counts) != 1:
            raise Champ3dInputError("guidance", f"guidance types have different frame counts {sorted(counts)}")
        self._num_frames = counts.pop()
        self.size = size

    def __len__(self) -> int:
        return self._num_frames

    def __call__(self, frame_indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return {
            name: _guidance_tensor([_resized(array[i], self.size) for i in frame_indices])
            for name, array in self._frames.items()
        }


class FolderGuidanceSource:
    """A source over a guidance folder on disk (:class:`champ3d.guidance_folder.GuidanceFolder`:
    champ3d's own output or a Champ-format motion folder).

    Frames are read from their PNG files when pulled, so memory does not grow with the
    frame count. ``types`` (default: all of the folder's types) are the guidance types
    served, in that order; ``size=(width, height)``, when given, is the frame size served.
    The folder has already checked that its types agree in frame count and frame size.
    """

    def __init__(self, folder: GuidanceFolder, types: Optional[Sequence[str]] = None, size: Optional[tuple[int, int]] = None):
        types = tuple(folder.types if types is None else types)
        if not types:
            raise Champ3dInputError(folder.path, "no guidance types asked for")
        for name in types:
            if name not in folder.types:
                raise Champ3dInputError(folder.path / name, f"guidance type {name!r} is not in the folder (it has {list(folder.types)})")
        self.folder = folder
        self.guidance_types = types
        self.size = size

    def __len__(self) -> int:
        return len(self.folder)

    def __call__(self, frame_indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return {
            name: _guidance_tensor([_resized(self.folder.read(name, i), self.size) for i in frame_indices])
            for name in self.guidance_types
        }


def _resized(frame: np.ndarray, size: Optional[tuple[int, int]]) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 resized to ``size=(width, height)`` with PIL bicubic, when it differs."""
    if size is None or (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    return np.asarray(Image.fromarray(frame).resize(tuple(size), Image.BICUBIC))


def _guidance_tensor(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """n uint8 (H, W, 3) frames -> float32 (3, n, H, W) in [0, 1], channels-last strides."""
    stacked = torch.from_numpy(np.stack(frames)).float() / 255.0  # (n, H, W, 3)
    return stacked.permute(3, 0, 1, 2)
