"""Feature extractors for the distribution metrics (FID, FID-VID, FVD).

An extractor sees one video at a time as a stream of uint8 ``[n, H, W, 3]`` RGB chunks
(:meth:`add_frames`) and returns that video's feature rows ``[M, D]`` (:meth:`end_video`):
one row per frame for FID, one row per clip window for the video metrics. The Fréchet
distance (:mod:`champ3d.eval.frechet`) is then taken between the pooled rows of all
predicted and all ground-truth videos.

Resizing methods (named in the specs):
- ``pil_bicubic_float``: each channel as a float32 PIL image, bicubic, no quantisation
  (clean-fid's "clean" resizer; DisCo uses it for FID-VID and FVD inputs);
- ``torch_bilinear``: ``F.interpolate(mode="bilinear", align_corners=False)`` (pytorch-fid);
- ``torch_bilinear_short_side``: shorter side to the target with ``torch_bilinear`` (long
  side rounded up), then a centre crop (StyleGAN-V / common_metrics FVD preprocessing).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ResizeMethod = Literal["pil_bicubic_float", "torch_bilinear", "torch_bilinear_short_side"]


def resize_frames(frames: np.ndarray, size: int, method: ResizeMethod, clip_to_uint8_range: bool) -> torch.Tensor:
    """uint8 ``[n, H, W, 3]`` -> float32 ``[n, 3, size, size]`` on the 0..255 scale."""
    if method == "pil_bicubic_float":
        out = np.empty((len(frames), 3, size, size), dtype=np.float32)
        for i, frame in enumerate(frames):
            for c in range(3):
                channel = Image.fromarray(frame[..., c].astype(np.float32), mode="F")
                out[i, c] = np.asarray(channel.resize((size, size), resample=Image.BICUBIC))
        x = torch.from_numpy(out)
    else:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        height, width = x.shape[2:]
        if method == "torch_bilinear":
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        else:
            scale = size / min(height, width)
            target = (size, math.ceil(width * scale)) if height < width else (math.ceil(height * scale), size)
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
            top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
            x = x[:, :, top:top + size, left:left + size]
    return x.clamp(0.0, 255.0) if clip_to_uint8_range else x


@dataclass(frozen=True)
class InputSpec:
    """Frames to network input: resize to ``size`` x ``size`` with ``resize``, optionally clip
    to 0..255, then ``(x - offset) / scale`` per RGB channel."""

    size: int
    resize: ResizeMethod
    clip_to_uint8_range: bool
    offset: tuple[float, float, float]
    scale: float

    def apply(self, frames: np.ndarray) -> torch.Tensor:
        x = resize_frames(frames, self.size, self.resize, self.clip_to_uint8_range)
        return (x - torch.tensor(self.offset).view(1, 3, 1, 1)) / self.scale


@dataclass(frozen=True)
class ClipSampling:
    """Clip windows over a video's evaluated frames: ``length`` consecutive frames starting
    every ``stride`` frames; a video shorter than ``length`` gives no clip."""

    length: int
    stride: int

    def starts(self, num_frames: int) -> range:
        return range(0, max(num_frames - self.length + 1, 0), self.stride)


Network = Callable[[torch.Tensor], torch.Tensor]


class FrameFeatures:
    """One feature row per frame: ``network(input [n, 3, S, S]) -> [n, D]``."""

    def __init__(self, network: Network, spec: InputSpec, device: torch.device, batch_size: int):
        self.network, self.spec, self.device, self.batch_size = network, spec, device, batch_size
        self._rows: list[np.ndarray] = []

    @torch.no_grad()
    def add_frames(self, frames: np.ndarray) -> None:
        for start in range(0, len(frames), self.batch_size):
            x = self.spec.apply(frames[start:start + self.batch_size]).to(self.device)
            self._rows.append(self.network(x).reshape(len(x), -1).double().cpu().numpy())

    def end_video(self) -> np.ndarray:
        rows, self._rows = self._rows, []
        return np.concatenate(rows) if rows else np.zeros((0, 0))


class ClipFeatures:
    """One feature row per clip window: ``network(clips [B, 3, L, S, S]) -> [B, D]``."""

    def __init__(self, network: Network, spec: InputSpec, sampling: ClipSampling, device: torch.device,
                 batch_size: int):
        self.network, self.spec, self.sampling = network, spec, sampling
        self.device, self.batch_size = device, batch_size
        self._frames: list[torch.Tensor] = []

    def add_frames(self, frames: np.ndarray) -> None:
        self._frames.append(self.spec.apply(frames))

    @torch.no_grad()
    def end_video(self) -> np.ndarray:
        video = torch.cat(self._frames) if self._frames else torch.zeros(0)
        self._frames = []
        starts = list(self.sampling.starts(len(video)))
        if not starts:
            return np.zeros((0, 0))
        rows = []
        offsets = torch.arange(self.sampling.length)
        for first in range(0, len(starts), self.batch_size):
            index = torch.tensor(starts[first:first + self.batch_size])[:, None] + offsets  # [B, L]
            clips = video[index].permute(0, 2, 1, 3, 4).to(self.device)  # [B, 3, L, S, S]
            rows.append(self.network(clips).reshape(len(clips), -1).double().cpu().numpy())
        return np.concatenate(rows)
