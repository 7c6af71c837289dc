"""Champ's CLIP image conditioning.

The reference image (uint8 HxWx3 RGB, any size) is squashed to 224x224 with PIL bicubic
(aspect ratio not kept), then goes through ``CLIPImageProcessor`` with its defaults
(shortest-edge 224 bicubic resize, centre crop 224, x/255, OpenAI CLIP mean/std). The
vision tower's ``image_embeds`` (projection output, **not** L2-normalised) is the single
cross-attention token of both UNets: shape (1, 1, projection_dim).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import CLIPVisionModelWithProjection

from champ3d.errors import Champ3dInputError

try:  # transformers >= 5 names the PIL/numpy implementation explicitly
    from transformers import CLIPImageProcessorPil as _ClipProcessor
except ImportError:  # older transformers: CLIPImageProcessor is the PIL/numpy implementation
    from transformers import CLIPImageProcessor as _ClipProcessor

CLIP_SQUASH_SIZE = 224


class ClipImageConditioner(nn.Module):
    """CLIP vision tower plus Champ's preprocessing; ``forward`` maps pixel values to the context token."""

    def __init__(self, image_encoder: CLIPVisionModelWithProjection):
        super().__init__()
        self.image_encoder = image_encoder
        self.processor = _ClipProcessor()

    @classmethod
    def from_dir(cls, path: str | Path) -> "ClipImageConditioner":
        """Load a local ``CLIPVisionModelWithProjection`` folder (``config.json`` + weights); nothing is downloaded."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise Champ3dInputError(path / "config.json", "CLIP image encoder config not found")
        try:
            encoder = CLIPVisionModelWithProjection.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise Champ3dInputError(path, f"cannot load the CLIP image encoder ({exc})") from exc
        return cls(encoder.eval())

    def pixel_values(self, image: np.ndarray) -> torch.Tensor:
        """(1, 3, 224, 224) float32 CLIP input for a uint8 HxWx3 RGB image."""
        squashed = Image.fromarray(check_reference_image(image)).resize((CLIP_SQUASH_SIZE, CLIP_SQUASH_SIZE), Image.BICUBIC)
        return self.processor(images=squashed, return_tensors="pt")["pixel_values"]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``image_embeds`` as one context token: (B, 1, projection_dim)."""
        param = next(self.image_encoder.parameters())
        embeds = self.image_encoder(pixel_values.to(param.device, param.dtype)).image_embeds
        return embeds.unsqueeze(1)


def check_reference_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a uint8 HxWx3 RGB array, or :class:`Champ3dInputError` naming ``ref_image``."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise Champ3dInputError("ref_image", f"expected a uint8 HxWx3 RGB image, got {image.dtype} {image.shape}")
    return image
