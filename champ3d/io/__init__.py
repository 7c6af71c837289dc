"""Media input and output.

Reading: :func:`open_frames` streams uint8 RGB frames from a video, an image folder or
one image; :func:`read_image` reads a single picture. Writing: :class:`VideoWriter`
(H.264 mp4) and :class:`PngSequenceWriter` (``0000.png`` ...). Every output is written
under a temporary name and renamed once complete (:mod:`champ3d.io.atomic`).
"""
from champ3d.io.atomic import atomic_output_dir, atomic_write_path
from champ3d.io.frames import open_frames
from champ3d.io.images import IMAGE_SUFFIXES, ImageFrames, natural_sort_key, read_image
from champ3d.io.source import FrameSource
from champ3d.io.video import VideoFrames
from champ3d.io.writers import PngSequenceWriter, VideoWriter

__all__ = [
    "IMAGE_SUFFIXES",
    "FrameSource",
    "ImageFrames",
    "PngSequenceWriter",
    "VideoFrames",
    "VideoWriter",
    "atomic_output_dir",
    "atomic_write_path",
    "natural_sort_key",
    "open_frames",
    "read_image",
]
