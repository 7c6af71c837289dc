"""Context-window schedules: which frames each denoising-UNet call sees in a long video.

A schedule maps a frame count to a list of windows (lists of frame indices). The motion
modules only attend within a window; each frame's prediction is the plain average over the
windows that contain it (done by the pipeline).

* :class:`UniformSchedule` is Champ's ``uniform`` schedule exactly as the official pipeline
  calls it (step 0, closed loop): windows start every ``context_size - overlap`` frames and
  indices wrap modulo the frame count, so the last windows join the end of the video to its
  start, and the motion modules treat that jump as adjacent frames. Use it for parity.
* :class:`SlidingSchedule` (the default) never wraps: the same stride, with the last window
  moved back to end exactly at the last frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from champ3d.errors import Champ3dInputError


class ContextSchedule(Protocol):
    def __call__(self, num_frames: int) -> list[list[int]]:
        """Windows covering frames ``0..num_frames-1``."""


def _check_window(context_size: int, overlap: int) -> None:
    if context_size < 1:
        raise Champ3dInputError("context_frames", f"must be >= 1, got {context_size}")
    if not 0 <= overlap < context_size:
        raise Champ3dInputError("context_overlap", f"must be in [0, context_frames), got {overlap}")


@dataclass(frozen=True)
class UniformSchedule:
    """Champ's ``uniform`` context schedule (``pipelines/context.py``) at step 0.

    With F <= ``context_size`` there is one window of all frames. Otherwise, for each dilation
    ``d`` in 1, 2, 4, ... (``min(stride, ceil(log2(F / context_size)) + 1)`` of them), windows
    start at ``range(0, F [- overlap unless closed_loop], context_size * d - overlap)`` and hold
    ``[(s + k * d) % F for k < context_size]``.
    Example: F = 6, size 4, overlap 2 -> [0,1,2,3], [2,3,4,5], [4,5,0,1].
    """

    context_size: int = 24
    overlap: int = 4
    stride: int = 1
    closed_loop: bool = True

    def __call__(self, num_frames: int) -> list[list[int]]:
        _check_window(self.context_size, self.overlap)
        if num_frames <= self.context_size:
            return [list(range(num_frames))]
        num_dilations = min(self.stride, int(math.ceil(math.log2(num_frames / self.context_size))) + 1)
        end = num_frames + (0 if self.closed_loop else -self.overlap)
        windows = []
        for dilation in (1 << i for i in range(num_dilations)):
            span = self.context_size * dilation
            for start in range(0, end, span - self.overlap):
                windows.append([e % num_frames for e in range(start, start + span, dilation)])
        return windows


@dataclass(frozen=True)
class SlidingSchedule:
    """Contiguous windows that never wrap around.

    Windows start every ``context_size - overlap`` frames; the last one starts at
    ``F - context_size`` so it ends at the last frame (its overlap with the previous window
    may be larger than ``overlap``). F <= ``context_size`` gives one window.
    Example: F = 100, size 24, overlap 4 -> starts 0, 20, 40, 60, 76.
    """

    context_size: int = 24
    overlap: int = 4

    def __call__(self, num_frames: int) -> list[list[int]]:
        _check_window(self.context_size, self.overlap)
        if num_frames <= self.context_size:
            return [list(range(num_frames))]
        last = num_frames - self.context_size
        starts = list(range(0, last, self.context_size - self.overlap)) + [last]
        return [list(range(s, s + self.context_size)) for s in starts]


CONTEXT_SCHEDULES = ("sliding", "uniform")


def make_context_schedule(name: str, context_frames: int, context_overlap: int, context_stride: int = 1) -> ContextSchedule:
    """A schedule by name: ``"uniform"`` (Champ's, wraps around) or ``"sliding"`` (no wrap; stride must be 1)."""
    if name == "uniform":
        return UniformSchedule(context_frames, context_overlap, context_stride, closed_loop=True)
    if name == "sliding":
        if context_stride != 1:
            raise Champ3dInputError("context_stride", "the sliding schedule has no dilated windows; use 1")
        return SlidingSchedule(context_frames, context_overlap)
    raise Champ3dInputError("context_schedule", f"unknown schedule {name!r}; expected one of {CONTEXT_SCHEDULES}")
