"""Video files (mp4, mov, webm, mkv, avi, anything FFmpeg demuxes) decoded with PyAV.

Opening a video probes it: the container must parse, hold a video stream and decode a
first frame, and a container that indexes its packets (mp4/mov) must not index bytes
beyond the end of the file. Iterating decodes one frame at a time (FFmpeg frame/slice
threads, ``thread_type="AUTO"``), converts it to RGB with the colour matrix and range
tagged in the stream (BT.601 when untagged, as FFmpeg does) and turns it upright.

Rotation: the display matrix (the mp4/mov ``tkhd`` matrix, what phones write as
``rotate=90``) says how the coded picture is to be shown; all eight quarter-turn and
mirror combinations are applied. Other angles are rounded to the nearest quarter turn
(mirroring dropped) with a warning. HDR transfer functions (PQ, HLG) are not
tone-mapped, and a warning says so. Non-square pixels are not resampled.

The frame rate is the stream's average rate as an exact fraction (30000/1001 stays
30000/1001); variable-rate video is read frame by frame at that nominal rate.

Truncated or damaged input is an error, never silently shorter output:

* a file whose index is cut off or that fails to parse raises on opening;
* a packet the decoder rejects raises during iteration, naming the frame;
* a stream that ends short of the frame count the container declared raises at the
  end of the iteration. Up to ``2 + 1 %`` frames may be missing from a declared count
  (edit lists may drop a few) and ``2 + 10 %`` from a duration estimate (webm/mkv,
  whose timing may be variable), so a webm/mkv cut within its last tenth is not caught.

All of these raise :class:`champ3d.errors.Champ3dInputError` naming the file.
"""
from __future__ import annotations

import math
import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Tuple

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType

from champ3d.errors import Champ3dInputError
from champ3d.io.source import FrameSource

_HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}  # AVColorTransferCharacteristic


class VideoFrames(FrameSource):
    """The frames of one video file; see the module notes for rotation and truncation."""

    def __init__(self, path: os.PathLike | str, max_frames: Optional[int] = None):
        self.path = Path(path)
        self._max_frames = max_frames
        with self._open() as container:
            stream = self._video_stream(container)
            self.frame_rate = _frame_rate(stream)
            declared, exact = _declared_frames(container, stream, self.frame_rate)
            _check_index_within_file(self.path, stream)
            first = next(self._decode(container, stream), None)
            if first is None:
                raise Champ3dInputError(self.path, "video has no decodable frames")
        self._orientation = _orientation(first, self.path)
        coded = (first.height, first.width)
        self.size = coded[::-1] if self._orientation[0] else coded
        trc = int(first.color_trc)
        if trc in _HDR_TRANSFERS:
            warnings.warn(
                f"{self.path}: HDR video ({_HDR_TRANSFERS[trc]}) is read without tone mapping; "
                "colours will look flat",
                stacklevel=3,
            )
        self._declared, self._declared_exact = declared, exact
        if declared is not None and max_frames is not None and declared >= max_frames:
            self.num_frames, self.num_frames_exact = max_frames, exact
        else:
            self.num_frames, self.num_frames_exact = declared, exact

    def __iter__(self) -> Iterator[np.ndarray]:
        transpose, flip_rows, flip_cols = self._orientation
        count = 0
        with self._open() as container:
            stream = self._video_stream(container)
            stream.codec_context.thread_type = "AUTO"
            for frame in self._decode(container, stream):
                rgb = frame.to_ndarray(format="rgb24")
                if transpose:
                    rgb = rgb.transpose(1, 0, 2)
                if flip_rows:
                    rgb = rgb[::-1]
                if flip_cols:
                    rgb = rgb[:, ::-1]
                count += 1
                yield np.array(rgb, order="C")  # a copy: the caller's array pins no libav buffer
                if count == self._max_frames:
                    return
        self._check_complete(count)
        self.num_frames, self.num_frames_exact = count, True

    def _check_complete(self, decoded: int) -> None:
        if self._declared is None or decoded >= self._declared:
            return
        slack = 2 + math.floor(self._declared * (0.01 if self._declared_exact else 0.10))
        if self._declared - decoded > slack:
            stated = "declares" if self._declared_exact else "duration implies about"
            raise Champ3dInputError(
                self.path,
                f"video is truncated or damaged: the container {stated} {self._declared} "
                f"frames but the stream ended after {decoded}",
            )

    def _open(self) -> av.container.InputContainer:
        if not self.path.is_file():
            raise Champ3dInputError(self.path, "file does not exist" if not self.path.exists() else "not a file")
        if self.path.stat().st_size == 0:
            raise Champ3dInputError(self.path, "file is empty (0 bytes)")
        try:
            return av.open(str(self.path), mode="r")
        except av.FFmpegError as err:
            raise Champ3dInputError(
                self.path, f"not a readable video, or truncated before its index ({err.strerror})"
            ) from None

    def _video_stream(self, container: av.container.InputContainer) -> av.video.stream.VideoStream:
        stream = container.streams.best("video")  # FFmpeg's pick: the main track over cover art
        if stream is None:
            raise Champ3dInputError(self.path, "file holds no video frames (no video stream)")
        return stream

    def _decode(self, container, stream) -> Iterator[av.VideoFrame]:
        frame_index = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
                frames = packet.decode()
            except StopIteration:
                return
            except av.FFmpegError as err:
                raise Champ3dInputError(
                    self.path, f"video is damaged or truncated near frame {frame_index} ({err.strerror})"
                ) from None
            for frame in frames:
                frame_index += 1
                yield frame


def _frame_rate(stream) -> Optional[Fraction]:
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate:
            return Fraction(rate)
    return None


def _declared_frames(container, stream, rate: Optional[Fraction]) -> Tuple[Optional[int], bool]:
    """The frame count the container states (exact), else one estimated from its duration."""
    if stream.frames:
        return int(stream.frames), True
    if rate is None:
        return None, False
    if stream.duration is not None and stream.time_base is not None:
        seconds = stream.duration * stream.time_base
    elif container.duration is not None:
        seconds = Fraction(container.duration, av.time_base)
    else:
        return None, False
    return round(seconds * rate), False


def _check_index_within_file(path: Path, stream) -> None:
    size = path.stat().st_size
    entries = stream.index_entries
    if len(entries) == 0:
        return
    last = entries[len(entries) - 1]
    if last.pos + last.size > size:
        raise Champ3dInputError(
            path,
            f"video is truncated: its index reaches byte {last.pos + last.size} "
            f"but the file has {size} bytes",
        )


def _orientation(frame: av.VideoFrame, path: Path) -> Tuple[bool, bool, bool]:
    """(transpose, flip rows, flip columns), applied in that order, from the display matrix.

    The matrix (ISO/IEC 14496-12 ``tkhd``; FFmpeg ``AV_FRAME_DATA_DISPLAYMATRIX``: nine
    int32, a/b/c/d in 16.16 fixed point) maps a coded pixel (x right, y down) to its
    display position: ``x' = a*x + c*y``, ``y' = b*x + d*y``.
    """
    matrix = None
    for side_data in frame.side_data:
        if side_data.type == SideDataType.DISPLAYMATRIX:
            matrix = np.frombuffer(bytes(side_data), dtype="<i4", count=9).astype(np.float64)
    if matrix is None:
        return False, False, False
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    angle = math.degrees(math.atan2(b, a))
    quarter = round(angle / 90.0)
    if abs(angle - 90.0 * quarter) > 1.0:
        warnings.warn(
            f"{path}: display rotation of {angle:.1f} degrees is not a quarter turn; "
            f"rotating by {90 * quarter % 360} degrees (any mirroring is ignored)",
            stacklevel=4,
        )
        a, b = round(math.cos(math.radians(90 * quarter))), round(math.sin(math.radians(90 * quarter)))
        c, d = -b, a
    if abs(a) >= abs(b):
        return False, d < 0, a < 0
    # Transposed: x' = c*y, y' = b*x.
    return True, b < 0, c < 0
