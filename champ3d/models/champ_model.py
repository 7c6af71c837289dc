"""Champ's networks tied together: denoising UNet, reference UNet and the guidance encoders."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch
from torch import nn

from champ3d.models.attention import OFFICIAL_BANK_DTYPE, ReferenceReader, bank_for_reading
from champ3d.models.config import ChampModelConfig, guidance_types_or_default
from champ3d.models.guidance_encoder import GuidanceEncoder
from champ3d.models.unet_2d import ReferenceUNet2D
from champ3d.models.unet_3d import DenoisingUNet3D


@dataclass
class ChampForwardOutput:
    """``model_pred`` (B, 4, F, h, w): predicted v. ``guidance_fea``: the summed guidance features
    that were added after ``conv_in``. ``reference_bank``: the bank as written by the reference
    UNet (before any rounding), empty for an unconditional forward."""

    model_pred: torch.Tensor
    guidance_fea: torch.Tensor
    reference_bank: dict[str, torch.Tensor]


class ChampModel(nn.Module):
    """Champ's ``ChampModel``.

    ``guidance_types`` names the guidance encoders (Champ: depth, normal, semantic_map,
    dwpose). ``bank_dtype`` is the dtype the reference bank is rounded to before it is read:
    ``torch.float16`` is the official behaviour (even in fp32 runs); ``None`` keeps it in the
    compute dtype.
    """

    def __init__(
        self,
        config: ChampModelConfig,
        guidance_types: Optional[Sequence[str]] = None,
        bank_dtype: Optional[torch.dtype] = OFFICIAL_BANK_DTYPE,
    ):
        super().__init__()
        self.config = config
        self.guidance_types = guidance_types_or_default(guidance_types)
        self.bank_dtype = bank_dtype
        self.denoising_unet = DenoisingUNet3D(config)
        self.reference_unet = ReferenceUNet2D(config)
        spec = config.guidance_spec()
        self.guidance_encoders = nn.ModuleDict({name: GuidanceEncoder(spec) for name in self.guidance_types})

    def encode_guidance(self, conditions: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Sum of each type's encoder output; ``conditions[type]`` is (B, 3, F, H, W) in [0, 1].

        Any non-empty subset of the model's types may be given; they are summed in the
        model's type order.
        """
        unknown = set(conditions) - set(self.guidance_types)
        if unknown or not conditions:
            raise ValueError(f"guidance types {sorted(conditions)} do not match the model's {list(self.guidance_types)}")
        features = [self.guidance_encoders[name](conditions[name]) for name in self.guidance_types if name in conditions]
        return torch.stack(features, dim=0).sum(dim=0)

    def reference_bank(self, ref_latents: torch.Tensor, clip_context: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the reference UNet at timestep 0 on ``ref_latents`` (B, 4, h, w) with ``clip_context`` (B, 1, D)."""
        return self.reference_unet(ref_latents, 0, clip_context)

    def reader(self, bank: Mapping[str, torch.Tensor], num_frames: int, num_uncond: int = 0) -> ReferenceReader:
        """A reader of ``bank`` (as written) rounded to :attr:`bank_dtype`; see :class:`ReferenceReader`."""
        return ReferenceReader(bank_for_reading(bank, self.bank_dtype), num_frames, num_uncond)

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        ref_image_latents: torch.Tensor,
        clip_image_embeds: torch.Tensor,
        guidance: Mapping[str, torch.Tensor],
        uncond_fwd: bool = False,
    ) -> ChampForwardOutput:
        """One Champ forward (training-style, no classifier-free guidance batch).

        ``noisy_latents`` (B, 4, F, h, w); ``ref_image_latents`` (B, 4, h, w), VAE mean x 0.18215;
        ``clip_image_embeds`` (B, 1, D); ``guidance[type]`` (B, 3, F, H, W) in [0, 1].
        ``uncond_fwd`` skips the reference UNet, so the spatial self-attentions are plain
        (Champ's training-time condition drop).
        """
        guidance_fea = self.encode_guidance(guidance)
        bank: dict[str, torch.Tensor] = {}
        reader = None
        if not uncond_fwd:
            bank = self.reference_bank(ref_image_latents, clip_image_embeds)
            reader = self.reader(bank, num_frames=noisy_latents.shape[2])
        model_pred = self.denoising_unet(noisy_latents, timesteps, clip_image_embeds, guidance_fea, reader)
        return ChampForwardOutput(model_pred=model_pred, guidance_fea=guidance_fea, reference_bank=bank)
