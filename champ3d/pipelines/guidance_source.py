"""Guidance frames on demand.

The long-video pipeline never holds a whole guidance video: it asks a *guidance source* for
the frames of one window at a time. A source has ``guidance_types``, a length (the frame
count) and is called with a list of frame indices; it returns, per guidance type, a float32
tensor (3, n, H, W) with values ``uint8 / 255`` in [0, 1] (Champ's guidance encoding; no
mean/std normalisation), frames in the order of the indices.
"""
from __future__ import annotations

from typing import Mapping, Optional, Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from champ3d.errors import Champ3dInputError


class GuidanceSource(Protocol):
    guidance_types: tuple[str, ...]

    def __len__(self) -> int: ...

    def __call__(self, frame_indices: Sequence[int]) -> dict[str, torch.Tensor]: ...


class ArrayGuidanceSource:
    """A source over in-memory uint8 frames: ``frames[type]`` is (F, H, W, 3) RGB.

    With ``size=(width, height)``, frames of another size are resized with PIL bicubic (the
    resampling Champ's inference uses for guidance images) when they are pulled.

    The returned tensors are channel-first views of HxWx3 data (channels-last strides), the
    layout Champ's own image loading produces; on CPU this layout selects PyTorch's
    channels-last GroupNorm kernel, whose rounding the official outputs carry (see
    :func:`champ3d.models.unet_3d.fold_frames`).
    """

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
        out = {}
        for name, array in self._frames.items():
            frames = [self._resized(array[i]) for i in frame_indices]
            stacked = torch.from_numpy(np.stack(frames)).float() / 255.0  # (n, H, W, 3)
            out[name] = stacked.permute(3, 0, 1, 2)
        return out

    def _resized(self, frame: np.ndarray) -> np.ndarray:
        if self.size is None or (frame.shape[1], frame.shape[0]) == tuple(self.size):
            return frame
        return np.asarray(Image.fromarray(frame).resize(tuple(self.size), Image.BICUBIC))
