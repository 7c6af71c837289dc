"""Champ's reference UNet: the SD1.5 UNet without its output head, run only to fill the reference bank."""
from __future__ import annotations

import torch

from champ3d.models.attention import ReferenceWriter
from champ3d.models.config import ChampModelConfig
from champ3d.models.unet_blocks import UNetBody


class ReferenceUNet2D(UNetBody):
    """SD1.5-layout 2-D UNet with no ``conv_norm_out``/``conv_out`` (682 keys at SD1.5 size).

    Its forward returns the reference bank: for every spatial transformer block, keyed by
    module path (e.g. ``down_blocks.0.attentions.0.transformer_blocks.0``), the output of the
    block's ``norm1``, shape (B, h*w, C). The up-path features are computed (as in Champ) but
    never used.
    """

    def __init__(self, config: ChampModelConfig):
        super().__init__(config.unet_spec(), motion=None)

    def forward(self, latents: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor) -> dict[str, torch.Tensor]:
        """``latents`` (B, 4, h, w), ``encoder_hidden_states`` (B, tokens, D); Champ runs it at timestep 0."""
        writer = ReferenceWriter()
        temb = self.time_embedding_rows(timestep, latents.shape[0], 1, latents.dtype, latents.device)
        self.run_blocks(self.conv_in(latents), temb, encoder_hidden_states, writer, num_frames=1)
        return writer.bank
