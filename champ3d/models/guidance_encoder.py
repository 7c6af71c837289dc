"""Champ's guidance encoder: one per condition type (depth, normal, semantic_map, dwpose).

Input: a guidance video (B, 3, F, H, W) with values ``uint8 / 255`` in [0, 1] (no mean/std
normalisation, no shift to [-1, 1]). Output: (B, C_emb, F, H/8, W/8) features, added to the
denoising UNet's ``conv_in`` output. Every op works per frame.

Forward (the only path Champ executes): ``SiLU(conv_in)``, then ``SiLU(block)`` for the six
3x3 convs (strides 1, 2, 1, 2, 1, 2 for four widths), then ``attentions[-1]``, then ``conv_out``.
``attentions[0..-2]`` and ``guidance_attention`` exist only so that the checkpoint keys match.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from champ3d.models.attention import SpatialTransformer
from champ3d.models.config import GuidanceEncoderSpec
from champ3d.models.unet_3d import fold_frames, unfold_frames

# Champ builds the first attention of each width pair with 1 GroupNorm group and the second
# (and the unused guidance_attention) with 32.
_FIRST_ATTENTION_GROUPS = 1
_SECOND_ATTENTION_GROUPS = 32


class GuidanceEncoder(nn.Module):
    def __init__(self, spec: GuidanceEncoderSpec):
        super().__init__()
        widths = spec.block_out_channels
        heads = spec.attention_num_heads
        self.conv_in = nn.Conv2d(spec.input_channels, widths[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        self.attentions = nn.ModuleList()
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            self.blocks.append(nn.Conv2d(width_in, width_in, kernel_size=3, padding=1))
            self.attentions.append(SpatialTransformer(width_in, heads, _FIRST_ATTENTION_GROUPS, cross_attention_dim=None))
            self.blocks.append(nn.Conv2d(width_in, width_out, kernel_size=3, padding=1, stride=2))
            self.attentions.append(SpatialTransformer(width_out, heads, _SECOND_ATTENTION_GROUPS, cross_attention_dim=None))
        self.guidance_attention = SpatialTransformer(widths[-1], heads, _SECOND_ATTENTION_GROUPS, cross_attention_dim=None)
        self.conv_out = nn.Conv2d(widths[-1], spec.embedding_channels, kernel_size=3, padding=1)
        # Champ zero-initialises the output conv: a new encoder adds exactly nothing until trained.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        """``condition`` (B, 3, F, H, W) in [0, 1] -> features (B, C_emb, F, H/8, W/8)."""
        num_frames = condition.shape[2]
        x = F.silu(self.conv_in(fold_frames(condition)))
        for block in self.blocks:
            x = F.silu(block(x))
        x = self.attentions[-1](x)
        return unfold_frames(self.conv_out(x), num_frames)
