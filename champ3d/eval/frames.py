"""Reading the videos to compare: folders of frame images or video files.

A *video root* (the prediction or the ground-truth directory) holds one entry per video:
either a sub-folder of frame images (in natural order, ``2.png`` before ``10.png``, as
:mod:`champ3d.io` reads folders; suffixes :data:`champ3d.io.images.IMAGE_SUFFIXES`) or a
video file (``.mp4 .mov .mkv .avi .webm``); the video id is the folder name or the
file stem. Prediction and ground truth are paired by video id, and frame by frame: they
must have the same frame count and size, and two image folders must hold the same frame
file names (DisCo's pairing rule). Frames are yielded as uint8 ``[n, H, W, 3]`` RGB chunks.

Reading uses PIL for images and PyAV for video files.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Optional

import av
import numpy as np
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.io.images import IMAGE_SUFFIXES, natural_sort_key

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")
_PIL_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS, "box": Image.BOX}


@dataclass(frozen=True)
class VideoSource:
    video_id: str
    path: Path
    frame_files: Optional[tuple[Path, ...]]  # image sequence; None for a video file

    @property
    def frame_names(self) -> Optional[list[str]]:
        return None if self.frame_files is None else [f.stem for f in self.frame_files]

    def frame_count(self) -> int:
        if self.frame_files is not None:
            return len(self.frame_files)
        with self._open() as container:
            stream = container.streams.video[0]
            if stream.frames > 0:
                return stream.frames
            return sum(1 for packet in container.demux(stream) if packet.size > 0)

    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the first frame."""
        if self.frame_files is not None:
            with Image.open(self.frame_files[0]) as image:
                return image.height, image.width
        with self._open() as container:
            codec = container.streams.video[0].codec_context
            return codec.height, codec.width

    def _open(self):
        try:
            container = av.open(str(self.path))
        except av.error.FFmpegError as exc:
            raise Champ3dInputError(self.path, f"cannot open video: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise Champ3dInputError(self.path, "file has no video stream")
        return container

    def iter_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(frame index, uint8 HxWx3 RGB) in order; every frame must match the first's size."""
        expected = self.frame_size()
        if self.frame_files is not None:
            for index, file in enumerate(self.frame_files):
                with Image.open(file) as image:
                    frame = np.asarray(image.convert("RGB"))
                if frame.shape[:2] != expected:
                    raise Champ3dInputError(file, f"frame is {frame.shape[1]}x{frame.shape[0]}, the sequence's "
                                            f"first frame is {expected[1]}x{expected[0]}")
                yield index, frame
        else:
            with self._open() as container:
                for index, decoded in enumerate(container.decode(video=0)):
                    yield index, decoded.to_ndarray(format="rgb24")

    def sha256(self) -> str:
        """Hash of the file, or of the sequence's (file name, content) pairs."""
        digest = hashlib.sha256()
        for file in self.frame_files if self.frame_files is not None else (self.path,):
            if self.frame_files is not None:
                digest.update(file.name.encode() + b"\0")
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


def discover_videos(root: Path) -> dict[str, VideoSource]:
    root = Path(root)
    if not root.is_dir():
        raise Champ3dInputError(root, "video directory does not exist")
    videos: dict[str, VideoSource] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = tuple(sorted((f for f in entry.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES
                                  and not f.name.startswith(".")), key=lambda f: natural_sort_key(f.name)))
            if not files:
                raise Champ3dInputError(entry, f"folder holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
            source = VideoSource(entry.name, entry, files)
        elif entry.suffix.lower() in VIDEO_SUFFIXES:
            source = VideoSource(entry.stem, entry, None)
        else:
            continue
        if source.video_id in videos:
            raise Champ3dInputError(entry, f"video id {source.video_id!r} appears twice "
                                    f"(also {videos[source.video_id].path})")
        videos[source.video_id] = source
    if not videos:
        raise Champ3dInputError(root, "no videos found (expected frame folders or video files)")
    return videos


@dataclass(frozen=True)
class VideoPair:
    video_id: str
    pred: VideoSource
    gt: VideoSource
    num_frames: int
    frame_size: tuple[int, int]  # (height, width)


def pair_videos(pred_root: Path, gt_root: Path) -> list[VideoPair]:
    """Pair prediction and ground truth by video id; raise naming both sides on any mismatch."""
    pred, gt = discover_videos(pred_root), discover_videos(gt_root)
    if set(pred) != set(gt):
        only_pred, only_gt = sorted(set(pred) - set(gt)), sorted(set(gt) - set(pred))
        raise Champ3dInputError(f"{pred_root} vs {gt_root}",
                                f"video ids differ: only in prediction {only_pred}, only in ground truth {only_gt}")
    pairs = []
    for video_id in sorted(pred):
        p, g = pred[video_id], gt[video_id]
        where = f"{p.path} vs {g.path}"
        count_p, count_g = p.frame_count(), g.frame_count()
        if count_p != count_g:
            raise Champ3dInputError(where, f"video {video_id}: frame count differs, prediction has {count_p} "
                                    f"frames, ground truth {count_g}")
        size_p, size_g = p.frame_size(), g.frame_size()
        if size_p != size_g:
            raise Champ3dInputError(where, f"video {video_id}: frame size differs, prediction frames are "
                                    f"{size_p[1]}x{size_p[0]}, ground truth {size_g[1]}x{size_g[0]}")
        if p.frame_names is not None and g.frame_names is not None and p.frame_names != g.frame_names:
            first = next(i for i, (a, b) in enumerate(zip(p.frame_names, g.frame_names)) if a != b)
            raise Champ3dInputError(where, f"frame names differ at position {first}: "
                                    f"{p.frame_names[first]!r} vs {g.frame_names[first]!r}")
        pairs.append(VideoPair(video_id, p, g, count_p, size_p))
    return pairs


@dataclass(frozen=True)
class FrameSelection:
    """Evaluated frames: indices ``start, start + stride, ...`` of each sequence."""

    start: int = 0
    stride: int = 1

    def selects(self, index: int) -> bool:
        return index >= self.start and (index - self.start) % self.stride == 0

    def count(self, num_frames: int) -> int:
        return len(range(self.start, num_frames, self.stride))


@dataclass(frozen=True)
class FrameResize:
    """Bring frames to ``height`` x ``width`` with PIL ``filter`` on uint8 (output uint8).
    ``crop="center"`` first crops the largest centred region of the target aspect ratio;
    ``"stretch"`` resizes the whole frame."""

    height: int
    width: int
    crop: Literal["center", "stretch"]
    filter: Literal["bicubic", "bilinear", "lanczos", "box"]

    def apply(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if (h, w) == (self.height, self.width):
            return frame
        box = (0, 0, w, h)
        if self.crop == "center":
            target = self.width / self.height
            if w / h > target:
                crop_w = round(h * target)
                box = ((w - crop_w) // 2, 0, (w - crop_w) // 2 + crop_w, h)
            else:
                crop_h = round(w / target)
                box = (0, (h - crop_h) // 2, w, (h - crop_h) // 2 + crop_h)
        image = Image.fromarray(frame).resize((self.width, self.height), _PIL_FILTERS[self.filter], box=box)
        return np.asarray(image)


def paired_chunks(pair: VideoPair, selection: FrameSelection, resize: Optional[FrameResize],
                  chunk_pixels: int = 1 << 24) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """Yield (frame indices, pred chunk, gt chunk) of selected, resized frames, uint8 [n, H, W, 3]."""
    height, width = pair.frame_size if resize is None else (resize.height, resize.width)
    chunk = max(1, min(64, chunk_pixels // (height * width)))
    indices: list[int] = []
    pred_frames: list[np.ndarray] = []
    gt_frames: list[np.ndarray] = []
    pred_iter, gt_iter = pair.pred.iter_frames(), pair.gt.iter_frames()
    seen = 0
    for (index, p), (_, g) in zip(pred_iter, gt_iter):
        seen += 1
        if not selection.selects(index):
            continue
        if p.shape != g.shape:
            raise Champ3dInputError(f"{pair.pred.path} vs {pair.gt.path}",
                                    f"frame {index} is {p.shape[1]}x{p.shape[0]} in prediction, "
                                    f"{g.shape[1]}x{g.shape[0]} in ground truth")
        indices.append(index)
        pred_frames.append(p if resize is None else resize.apply(p))
        gt_frames.append(g if resize is None else resize.apply(g))
        if len(indices) == chunk:
            yield indices, np.stack(pred_frames), np.stack(gt_frames)
            indices, pred_frames, gt_frames = [], [], []
    leftover = sum(1 for _ in pred_iter) + sum(1 for _ in gt_iter)
    if seen != pair.num_frames or leftover:
        raise Champ3dInputError(f"{pair.pred.path} vs {pair.gt.path}",
                                f"decoded frame counts differ from the {pair.num_frames} announced")
    if indices:
        yield indices, np.stack(pred_frames), np.stack(gt_frames)
