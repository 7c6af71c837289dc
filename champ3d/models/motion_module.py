"""AnimateDiff-v2 ("Vanilla") motion module, with the original AnimateDiff/Champ key names.

Input and output are (N, C, h, w) images with ``N = batch * frames`` in frame-major order
(see :mod:`champ3d.models.attention`); the module is told ``num_frames``.

Computation (Champ spec §3):

1. ``y = GroupNorm(x)`` per frame (32 groups, eps 1e-6), tokens (N, h*w, C), ``proj_in`` Linear.
2. Per attention block k: ``n = norms[k](y)``, regrouped to (batch*h*w, F, C); the sinusoidal
   positional encoding is added to ``n`` (the normed attention input, not to ``y``);
   self-attention over the frame axis; the result is regrouped back and added to ``y``.
   Then ``y = ff(ff_norm(y)) + y``.
3. ``proj_out`` Linear, back to images, ``+ x``.

diffusers' ``TransformerTemporalModel`` normalises over all frames jointly and adds the
encoding differently, so it does not compute this function.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from champ3d.models.attention import Attention, FeedForward
from champ3d.models.config import MotionSpec

# AnimateDiff's TemporalTransformer3DModel uses its default of 32 GroupNorm groups; Champ's
# VanillaTemporalModule gives no way to change it.
MOTION_MODULE_NORM_GROUPS = 32


class PositionalEncoding(nn.Module):
    """Sinusoidal encoding ``pe[0, t, 2i] = sin(t * 10000^(-2i/C))``, ``pe[0, t, 2i+1] = cos(...)``.

    ``pe`` (1, max_len, C) is a persistent buffer: checkpoints carry it.
    """

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, F, C) plus the encoding of frames 0..F-1."""
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"{x.shape[1]} frames exceed the positional encoding length {self.pe.shape[1]}")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalSelfAttention(Attention):
    """Self-attention over the frame axis of (batch*F, L, C) tokens, with an optional ``pos_encoder``."""

    def __init__(self, dim: int, heads: int, head_dim: int, position_encoding_max_len: int | None):
        super().__init__(dim, heads, head_dim)
        self.pos_encoder = PositionalEncoding(dim, position_encoding_max_len) if position_encoding_max_len else None

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:  # type: ignore[override]
        rows, tokens, channels = x.shape
        batch = rows // num_frames
        seq = x.view(batch, num_frames, tokens, channels).permute(0, 2, 1, 3).reshape(batch * tokens, num_frames, channels)
        if self.pos_encoder is not None:
            seq = self.pos_encoder(seq)
        out = super().forward(seq)
        return out.view(batch, tokens, num_frames, channels).permute(0, 2, 1, 3).reshape(rows, tokens, channels)


class TemporalTransformerBlock(nn.Module):
    """``attention_blocks``/``norms`` pairs (pre-norm, residual), then ``ff``/``ff_norm``."""

    def __init__(self, dim: int, heads: int, head_dim: int, num_attention_blocks: int, position_encoding_max_len: int | None):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [TemporalSelfAttention(dim, heads, head_dim, position_encoding_max_len) for _ in range(num_attention_blocks)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(num_attention_blocks)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x), num_frames) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    """GroupNorm per frame -> ``proj_in`` -> temporal blocks -> ``proj_out`` -> + input."""

    def __init__(self, channels: int, spec: MotionSpec):
        super().__init__()
        heads = spec.num_attention_heads
        head_dim = channels // heads // spec.attention_dim_div
        inner = heads * head_dim
        max_len = spec.position_encoding_max_len if spec.position_encoding else None
        self.norm = nn.GroupNorm(MOTION_MODULE_NORM_GROUPS, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [
                TemporalTransformerBlock(inner, heads, head_dim, spec.num_attention_blocks, max_len)
                for _ in range(spec.num_transformer_block)
            ]
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        n, channels, h, w = x.shape
        hidden = self.norm(x).permute(0, 2, 3, 1).reshape(n, h * w, channels)
        hidden = self.proj_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden, num_frames)
        hidden = self.proj_out(hidden)
        return hidden.reshape(n, h, w, channels).permute(0, 3, 1, 2).contiguous() + x


class MotionModule(nn.Module):
    """One motion-module site; its weights live under ``temporal_transformer.``."""

    def __init__(self, channels: int, spec: MotionSpec):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, spec)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.temporal_transformer(x, num_frames)
