"""UNet blocks and the UNet body shared by Champ's reference UNet and denoising UNet.

Both UNets are SD1.5's ``UNet2DConditionModel`` layout and key names. Every op works on
(N, C, h, w) images with ``N = batch * frames`` (frame-major), which is exactly Champ's
"inflated" 2-D ops (reshape to (b*f, c, h, w), apply, reshape back): the ResNet and
transformer GroupNorms therefore normalise each frame on its own. Only the optional motion
modules mix frames; the reference UNet has none and runs with one frame.

The ResNet, down- and upsampling layers and the timestep embedding are diffusers' own
(``ResnetBlock2D``, ``Downsample2D``, ``Upsample2D``, ``Timesteps``, ``TimestepEmbedding``),
which compute the same function as Champ's inflated versions on this layout.
"""
from __future__ import annotations

from typing import Optional

import torch
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

from champ3d.models.attention import ReferenceReader, ReferenceWriter, SpatialTransformer, assign_bank_keys
from champ3d.models.config import MotionSpec, UNetSpec
from champ3d.models.motion_module import MotionModule

Reference = Optional[ReferenceWriter | ReferenceReader]


def _resnet(in_channels: int, out_channels: int, temb_channels: int, spec: UNetSpec, output_scale: float = 1.0):
    return ResnetBlock2D(
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=temb_channels,
        eps=spec.norm_eps,
        groups=spec.norm_num_groups,
        dropout=spec.dropout,
        non_linearity="silu",
        output_scale_factor=output_scale,
    )


def _transformer(channels: int, heads: int, spec: UNetSpec) -> SpatialTransformer:
    return SpatialTransformer(channels, heads, spec.norm_num_groups, spec.cross_attention_dim, dropout=spec.dropout)


def _per_layer_transformers(enabled: bool, layers: int, channels: int, heads: int, spec: UNetSpec):
    return nn.ModuleList([_transformer(channels, heads, spec) for _ in range(layers)]) if enabled else None


def _per_layer_motion_modules(motion: Optional[MotionSpec], layers: int, channels: int):
    return nn.ModuleList([MotionModule(channels, motion) for _ in range(layers)]) if motion else None


class DownBlock(nn.Module):
    """Per layer: ResNet -> [spatial transformer] -> [motion module]; then an optional stride-2 conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        spec: UNetSpec,
        heads: int,
        has_attention: bool,
        motion: Optional[MotionSpec],
        add_downsample: bool,
    ):
        super().__init__()
        layers = spec.layers_per_block
        self.resnets = nn.ModuleList(
            [_resnet(in_channels if i == 0 else out_channels, out_channels, temb_channels, spec) for i in range(layers)]
        )
        self.attentions = _per_layer_transformers(has_attention, layers, out_channels, heads, spec)
        self.motion_modules = _per_layer_motion_modules(motion, layers, out_channels)
        self.downsamplers = None
        if add_downsample:
            downsample = Downsample2D(out_channels, use_conv=True, padding=spec.downsample_padding, name="op")
            self.downsamplers = nn.ModuleList([downsample])

    def forward(self, x, temb, context, reference: Reference, num_frames: int):
        """Returns the output and the skip connections (every layer output, then the downsampled one)."""
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context, reference)
            if self.motion_modules is not None:
                x = self.motion_modules[i](x, num_frames)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class MidBlock(nn.Module):
    """ResNet -> spatial transformer -> [motion module] -> ResNet."""

    def __init__(self, channels: int, temb_channels: int, spec: UNetSpec, heads: int, motion: Optional[MotionSpec]):
        super().__init__()
        scale = spec.mid_block_scale_factor
        self.resnets = nn.ModuleList([_resnet(channels, channels, temb_channels, spec, scale) for _ in range(2)])
        self.attentions = nn.ModuleList([_transformer(channels, heads, spec)])
        self.motion_modules = nn.ModuleList([MotionModule(channels, motion)]) if motion else None

    def forward(self, x, temb, context, reference: Reference, num_frames: int) -> torch.Tensor:
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context, reference)
        if self.motion_modules is not None:
            x = self.motion_modules[0](x, num_frames)
        return self.resnets[1](x, temb)


class UpBlock(nn.Module):
    """Per layer: concat skip -> ResNet -> [spatial transformer] -> [motion module]; then optional nearest x2 + conv."""

    def __init__(
        self,
        in_channels: int,
        prev_channels: int,
        out_channels: int,
        temb_channels: int,
        spec: UNetSpec,
        heads: int,
        has_attention: bool,
        motion: Optional[MotionSpec],
        add_upsample: bool,
    ):
        super().__init__()
        layers = spec.layers_per_block + 1
        resnets = []
        for i in range(layers):
            skip_channels = in_channels if i == layers - 1 else out_channels
            resnet_in = prev_channels if i == 0 else out_channels
            resnets.append(_resnet(resnet_in + skip_channels, out_channels, temb_channels, spec))
        self.resnets = nn.ModuleList(resnets)
        self.attentions = _per_layer_transformers(has_attention, layers, out_channels, heads, spec)
        self.motion_modules = _per_layer_motion_modules(motion, layers, out_channels)
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels, use_conv=True)]) if add_upsample else None

    def forward(self, x, skips: list[torch.Tensor], temb, context, reference: Reference, num_frames: int, upsample_size):
        """``skips`` are this block's skip connections, consumed last first; ``upsample_size`` the target (h, w)."""
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips[-1 - i]], dim=1), temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context, reference)
            if self.motion_modules is not None:
                x = self.motion_modules[i](x, num_frames)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x


class UNetBody(nn.Module):
    """``conv_in``, time embedding, down, mid and up blocks of an SD1.5-layout UNet (no output head).

    ``motion`` adds motion modules (denoising UNet); ``None`` builds the plain 2-D UNet.
    """

    def __init__(self, spec: UNetSpec, motion: Optional[MotionSpec]):
        super().__init__()
        channels = spec.block_out_channels
        n = len(channels)
        temb_channels = channels[0] * 4
        self.conv_in = nn.Conv2d(spec.in_channels, channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(channels[0], spec.flip_sin_to_cos, spec.freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], temb_channels, act_fn="silu")

        self.down_blocks = nn.ModuleList()
        out_ch = channels[0]
        for i in range(n):
            in_ch, out_ch = out_ch, channels[i]
            level_motion = motion if motion is not None and motion.down_levels[i] else None
            has_attention = spec.down_has_attention[i]
            self.down_blocks.append(
                DownBlock(in_ch, out_ch, temb_channels, spec, spec.heads[i], has_attention, level_motion, i < n - 1)
            )
        mid_motion = motion if motion is not None and motion.mid else None
        self.mid_block = MidBlock(channels[-1], temb_channels, spec, spec.heads[-1], mid_motion)

        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(channels))
        reversed_heads = list(reversed(spec.heads))
        out_ch = reversed_channels[0]
        for i in range(n):
            prev_ch, out_ch = out_ch, reversed_channels[i]
            in_ch = reversed_channels[min(i + 1, n - 1)]
            level_motion = motion if motion is not None and motion.up_levels[i] else None
            has_attention = spec.up_has_attention[i]
            self.up_blocks.append(
                UpBlock(in_ch, prev_ch, out_ch, temb_channels, spec, reversed_heads[i], has_attention, level_motion, i < n - 1)
            )
        assign_bank_keys(self)

    def time_embedding_rows(self, timestep, batch: int, num_frames: int, dtype: torch.dtype, device) -> torch.Tensor:
        """Embedding of ``timestep`` (scalar or (batch,)) repeated per frame: (batch * num_frames, 4 * C0)."""
        t = torch.as_tensor(timestep, device=device)
        t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)
        emb = self.time_embedding(self.time_proj(t).to(dtype))
        return emb.repeat_interleave(num_frames, dim=0)

    def run_blocks(self, x: torch.Tensor, temb: torch.Tensor, context, reference: Reference, num_frames: int):
        """Down, mid and up blocks on the ``conv_in`` output (N, C0, h, w); returns the last up block's output."""
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, context, reference, num_frames)
            skips.extend(block_skips)
        x = self.mid_block(x, temb, context, reference, num_frames)
        for block in self.up_blocks:
            n_layers = len(block.resnets)
            block_skips, skips = skips[-n_layers:], skips[:-n_layers]
            upsample_size = skips[-1].shape[-2:] if skips else None
            x = block(x, block_skips, temb, context, reference, num_frames, upsample_size)
        return x
