"""The common face of every frame reader (video files, image folders, single images)."""
from __future__ import annotations

import abc
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np


class FrameSource(abc.ABC):
    """Frames read lazily, one at a time, from ``path``.

    Frames are numpy ``uint8`` arrays of shape ``(H, W, 3)``, RGB, already turned
    upright (video rotation metadata, EXIF orientation), C-contiguous and owned by the
    caller. Iterating reads the source again from the start, holding one frame at a
    time, so memory does not grow with the length of the source.

    Attributes:
        path: the file or folder the frames come from.
        size: ``(H, W)`` of every frame, after rotation.
        frame_rate: frames per second as an exact fraction (``30000/1001``), or None
            for still images, which have no rate of their own.
        num_frames: number of frames the iteration yields (at most ``max_frames``).
            For video it comes from the container (exact for mp4/mov/avi) or is
            estimated from its duration (webm/mkv), and it is None when the container
            states neither; a complete iteration replaces it with the decoded count.
        num_frames_exact: whether ``num_frames`` is a count rather than an estimate.
    """

    path: Path
    size: Tuple[int, int]
    frame_rate: Optional[Fraction]
    num_frames: Optional[int]
    num_frames_exact: bool

    @property
    def fps(self) -> Optional[float]:
        """``frame_rate`` as a float (None for still images)."""
        return None if self.frame_rate is None else float(self.frame_rate)

    @abc.abstractmethod
    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield the frames in order."""

    def __repr__(self) -> str:
        count = self.num_frames if self.num_frames_exact else f"~{self.num_frames}"
        return (
            f"{type(self).__name__}({str(self.path)!r}, size={self.size}, "
            f"frame_rate={self.frame_rate}, num_frames={count})"
        )
