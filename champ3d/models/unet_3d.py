"""Champ's denoising UNet: SD1.5 inflated to video, with motion modules and guidance input."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from champ3d.models.attention import ReferenceReader
from champ3d.models.config import ChampModelConfig
from champ3d.models.unet_blocks import UNetBody


def fold_frames(video: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) -> (B*F, C, h, w), frame-major rows; a view when the strides allow, like Champ's ``rearrange``.

    The memory layout is deliberately left as the caller made it, as in Champ's inflated ops:
    on CPU, PyTorch picks its GroupNorm kernel by layout (channels-last input, e.g. frames
    made from HxWx3 arrays, goes through a kernel that accumulates statistics less
    precisely), and Champ's guidance encoder normalises near-constant channels where the two
    kernels differ by about 1e-3. Matching the official outputs therefore needs the same
    input layout as the official code path.
    """
    b, c, f, h, w = video.shape
    return video.transpose(1, 2).reshape(b * f, c, h, w)


def unfold_frames(rows: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B*F, C, h, w) -> (B, C, F, h, w); inverse of :func:`fold_frames`."""
    n, c, h, w = rows.shape
    return rows.reshape(n // num_frames, num_frames, c, h, w).transpose(1, 2)


class DenoisingUNet3D(UNetBody):
    """SD1.5-layout UNet applied per frame, with AnimateDiff-v2 motion modules (Champ's UNet3DConditionModel).

    Key names are SD1.5's plus ``*.motion_modules.j.temporal_transformer.*``. GroupNorms are
    per frame everywhere (Champ's ``use_inflated_groupnorm``). Output head: GroupNorm (eps =
    ``norm_eps``) -> SiLU -> 3x3 ``conv_out``. The network predicts v (v-prediction).
    """

    def __init__(self, config: ChampModelConfig):
        spec = config.unet_spec()
        super().__init__(spec, motion=config.motion_spec())
        self.conv_norm_out = nn.GroupNorm(spec.norm_num_groups, spec.block_out_channels[0], eps=spec.norm_eps)
        self.conv_out = nn.Conv2d(spec.block_out_channels[0], spec.out_channels, kernel_size=3, padding=1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        encoder_hidden_states: torch.Tensor,
        guidance_fea: Optional[torch.Tensor] = None,
        reference: Optional[ReferenceReader] = None,
    ) -> torch.Tensor:
        """Predict v for ``sample`` (B, 4, F, h, w) at ``timestep`` (scalar or (B,)).

        ``encoder_hidden_states`` (B, tokens, D) is shared by all frames of an entry.
        ``guidance_fea`` (B, C0, F, h, w) is added to the ``conv_in`` output.
        ``reference`` reads a reference bank in every spatial self-attention.
        """
        batch, _, num_frames, _, _ = sample.shape
        temb = self.time_embedding_rows(timestep, batch, num_frames, sample.dtype, sample.device)
        context = encoder_hidden_states.repeat_interleave(num_frames, dim=0)
        x = self.conv_in(fold_frames(sample))
        if guidance_fea is not None:
            x = x + fold_frames(guidance_fea)
        x = self.run_blocks(x, temb, context, reference, num_frames)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return unfold_frames(x, num_frames)
