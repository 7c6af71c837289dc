"""One entry point for every kind of frame input."""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Optional

from champ3d.errors import Champ3dInputError
from champ3d.io.images import IMAGE_SUFFIXES, ImageFrames
from champ3d.io.source import FrameSource
from champ3d.io.video import VideoFrames


def open_frames(path: os.PathLike | str, max_frames: Optional[int] = None) -> FrameSource:
    """Open a video file, a folder of images or a single image as a :class:`FrameSource`.

    A folder is read as image frames (:class:`ImageFrames`), a file with an image suffix
    (:data:`IMAGE_SUFFIXES`) as one frame, and any other file as a video
    (:class:`VideoFrames`, mp4/mov/webm/mkv/avi and whatever else FFmpeg reads).
    ``max_frames`` (>= 1) stops the iteration after that many frames.

    Raises:
        Champ3dInputError: the path is missing, or is not a readable, non-empty,
            complete video or image set.
    """
    path = Path(path)
    if max_frames is not None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames < 1:
            raise ValueError(f"max_frames must be a positive integer, got {max_frames!r}")
        max_frames = int(max_frames)
    if not path.exists():
        raise Champ3dInputError(path, "file or folder does not exist")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFrames(path, max_frames=max_frames)
    return VideoFrames(path, max_frames=max_frames)
