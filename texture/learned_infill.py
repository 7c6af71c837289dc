"""Optional learned in-filling: a Stable Diffusion inpainting model working in UV space
(the 3DHM idea), loaded from a checkpoint folder the user supplies.

The folder is a diffusers ``StableDiffusionInpaintPipeline`` saved with
``save_pretrained`` (``model_index.json``, ``unet/`` with 9 input channels, ``vae/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``). It is read with
``local_files_only=True``: nothing is ever downloaded. A model trained on another UV
layout (SMPL's) does not transfer to this body's atlas; use one fine-tuned on it.

The model sees the partial texture resized to ``resolution`` (by default the model's own
size: its UNet's sample size times the VAE's scale factor, 512 for Stable Diffusion 1.5
inpainting), unseen texels and texels outside islands black, and the mask of unseen
island texels. Seen texels keep their
baked colour; unseen island texels take the model's output resized back to the atlas;
then the gutter is extended as in :func:`texture.infill.fill_texture`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch

from champ3d.errors import Champ3dInputError
from texture.atlas import UVAtlas
from texture.bake import TextureSample
from texture.infill import GUTTER, extend_gutter


@dataclass(frozen=True)
class LearnedInfillSettings:
    prompt: str = "real human"
    resolution: Optional[int] = None  # working size, pixels per side (None: the model's own)
    steps: int = 30
    guidance_scale: float = 7.5
    seed: int = 0
    gutter: int = GUTTER


def check_checkpoint_dir(checkpoint_dir: os.PathLike | str) -> Path:
    """The checkpoint folder, if it looks like a diffusers pipeline folder (cheap: before any
    work starts); a clear error otherwise."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise Champ3dInputError(folder, "texture in-filling checkpoint folder does not exist")
    if not (folder / "model_index.json").is_file():
        raise Champ3dInputError(folder, "not a diffusers pipeline folder (no model_index.json)")
    return folder


class LearnedInfiller:
    """A UV-space inpainting model read from ``checkpoint_dir`` (see the module docstring)."""

    def __init__(self, checkpoint_dir: os.PathLike | str, device: str = "cpu", dtype: torch.dtype = torch.float32):
        from diffusers import StableDiffusionInpaintPipeline

        folder = check_checkpoint_dir(checkpoint_dir)
        try:
            pipeline = StableDiffusionInpaintPipeline.from_pretrained(
                folder, local_files_only=True, dtype=dtype, safety_checker=None, feature_extractor=None,
                requires_safety_checker=False,
            )
        except (OSError, ValueError, KeyError) as error:
            raise Champ3dInputError(folder, f"cannot load the inpainting pipeline: {error}") from error
        if pipeline.unet.config.in_channels != 9:
            channels = pipeline.unet.config.in_channels
            raise Champ3dInputError(folder / "unet", f"expected an inpainting UNet (9 input channels), got {channels}")
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline.to(device)
        self.native_resolution = int(pipeline.unet.config.sample_size) * int(pipeline.vae_scale_factor)
        self.device = device

    def __call__(self, sample: TextureSample, atlas: UVAtlas, settings: LearnedInfillSettings | None = None) -> np.ndarray:
        """uint8 (A, A, 3) texture with every island texel set."""
        settings = settings or LearnedInfillSettings()
        size = atlas.size
        if sample.colour.shape != (size, size, 3):
            raise ValueError(f"sample is {sample.colour.shape[:2]} texels, the atlas {size}")
        islands = atlas.island_mask
        seen = sample.seen & islands
        holes = islands & ~seen
        texture = np.where(seen[..., None], sample.colour, 0.0).astype(np.float32)
        if holes.any():
            side = settings.resolution or self.native_resolution
            image = cv2.resize(texture, (side, side), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(holes.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA) > 0
            generator = torch.Generator(device="cpu").manual_seed(settings.seed)
            output = self.pipeline(
                prompt=settings.prompt, image=image[None], mask_image=mask[None, ..., None].astype(np.float32),
                height=side, width=side, num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
                generator=generator, output_type="np",
            ).images[0]
            generated = cv2.resize(np.asarray(output, np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
            texture[holes] = generated[holes]
        if settings.gutter > 0:
            texture = extend_gutter(texture, islands, settings.gutter)
        return (np.clip(texture, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
