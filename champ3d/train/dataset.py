"""Training samples cut from clip folders, reproducible from a seed and a sample number.

Sample ``n`` is a pure function of ``(seed, n)``: clips are visited in a seeded random
order, one permutation per pass over the clips, and every random choice for sample ``n``
(frames, crop) comes from a generator seeded with ``(seed, n)``. A run therefore resumes
exactly from its step count, with no sampler state to save. :class:`StepSampler` hands
process ``rank`` of ``world`` the sample numbers of its micro-batches.

Frame choice (Champ's datasets):

* one frame (stage 1, Champ's ``ImageDataset``): the reference frame anywhere; the target at
  least ``sample_margin`` frames after it when possible, else at least that far before it,
  else anywhere.
* several frames (stage 2, ``VideoDataset``): ``num_frames`` frames spread evenly over a
  span of ``(num_frames - 1) * frame_stride + 1`` frames (shorter clips: the whole clip,
  frames repeating) at a random start; the reference frame anywhere in the clip.

Crop: one box for every image of a sample (reference, targets, guidance), with the training
aspect ratio, its area a uniform fraction in ``crop_scale`` of the largest such box, at a
uniform position; resized to ``image_size`` with PIL bicubic (Champ: ``RandomResizedCrop``
with one shared draw).

A sample is a dict of tensors:

* ``pixels`` (3, F, H, W): target frames in [-1, 1];
* ``guidance[type]`` (3, F, H, W): guidance in [0, 1] (``uint8 / 255``, Champ's encoding);
* ``ref_pixels`` (3, H, W): the cropped reference frame in [-1, 1];
* ``clip_pixels``: the CLIP input of the whole (uncropped) reference frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from champ3d.train.clips import TrainingClip

ClipPixels = Callable[[np.ndarray], torch.Tensor]


@dataclass(frozen=True)
class SampleSpec:
    image_size: tuple[int, int]  # H, W
    crop_scale: tuple[float, float]
    num_frames: int = 1
    sample_margin: int = 30
    frame_stride: int = 4


def image_pair_frames(rng: np.random.Generator, length: int, margin: int) -> tuple[int, int]:
    """(reference, target) frame indices, Champ's stage-1 rule."""
    ref = int(rng.integers(0, length))
    if ref + margin < length:
        return ref, int(rng.integers(ref + margin, length))
    if ref - margin > 0:
        return ref, int(rng.integers(0, ref - margin + 1))
    return ref, int(rng.integers(0, length))


def clip_frames(rng: np.random.Generator, length: int, num_frames: int, stride: int) -> tuple[int, list[int]]:
    """(reference, target frame indices), Champ's stage-2 rule."""
    span = min(length, (num_frames - 1) * stride + 1)
    start = int(rng.integers(0, length - span + 1))
    targets = np.linspace(start, start + span - 1, num_frames).astype(int).tolist()
    return int(rng.integers(0, length)), targets


def crop_box(rng: np.random.Generator, size: tuple[int, int], out_size: tuple[int, int], scale: tuple[float, float]):
    """(left, top, right, bottom) of a random crop of an image of ``size`` (H, W) with the aspect of ``out_size``."""
    height, width = size
    aspect = out_size[1] / out_size[0]
    full_w, full_h = (height * aspect, height) if width / height > aspect else (width, width / aspect)
    side = math.sqrt(rng.uniform(scale[0], scale[1]))
    w = min(width, max(1, round(full_w * side)))
    h = min(height, max(1, round(full_h * side)))
    left = int(rng.integers(0, width - w + 1))
    top = int(rng.integers(0, height - h + 1))
    return left, top, left + w, top + h


class ChampTrainingSamples(Dataset):
    """Map-style dataset over every sample number ``n >= 0`` (see the module docstring).

    ``clip_pixels`` turns a uint8 (H, W, 3) RGB reference frame into its (1, 3, h, w) CLIP
    input (:meth:`champ3d.models.clip.ClipImageConditioner.pixel_values`).
    """

    def __init__(self, clips: Sequence[TrainingClip], spec: SampleSpec, seed: int, clip_pixels: ClipPixels):
        if not clips:
            raise ValueError("no training clips")
        self.clips = list(clips)
        self.spec = spec
        self.seed = seed
        self.clip_pixels = clip_pixels

    def clip_of(self, n: int) -> TrainingClip:
        passes, position = divmod(n, len(self.clips))
        order = np.random.default_rng([self.seed, passes]).permutation(len(self.clips))
        return self.clips[order[position]]

    def __getitem__(self, n: int) -> dict:
        spec = self.spec
        clip = self.clip_of(n)
        rng = np.random.default_rng([self.seed, n, 1])
        if spec.num_frames == 1:
            ref, target = image_pair_frames(rng, clip.num_frames, spec.sample_margin)
            targets = [target]
        else:
            ref, targets = clip_frames(rng, clip.num_frames, spec.num_frames, spec.frame_stride)
        box = crop_box(rng, clip.size, spec.image_size, spec.crop_scale)
        ref_image = clip.image(ref)

        def cropped(frame: np.ndarray) -> torch.Tensor:
            out = Image.fromarray(frame).resize((spec.image_size[1], spec.image_size[0]), Image.BICUBIC, box=box)
            return torch.from_numpy(np.array(out)).permute(2, 0, 1).float() / 255.0

        frames = torch.stack([cropped(clip.image(i)) for i in targets], dim=1)
        guidance = {
            name: torch.stack([cropped(clip.guidance_frame(name, i)) for i in targets], dim=1)
            for name in clip.guidance_types
        }
        return {
            "pixels": frames * 2.0 - 1.0,
            "guidance": guidance,
            "ref_pixels": cropped(ref_image) * 2.0 - 1.0,
            "clip_pixels": self.clip_pixels(ref_image)[0],
        }


class StepSampler(Sampler[int]):
    """Endless sample numbers for one process: micro-batch ``k`` of process ``rank`` holds
    ``(k * world + rank) * batch_size + j`` for ``j < batch_size``, from ``k = start_batch`` on."""

    def __init__(self, batch_size: int, start_batch: int = 0, rank: int = 0, world: int = 1):
        self.batch_size = batch_size
        self.start_batch = start_batch
        self.rank = rank
        self.world = world

    def __iter__(self) -> Iterator[int]:
        k = self.start_batch
        while True:
            first = (k * self.world + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            k += 1
