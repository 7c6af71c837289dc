"""Configuration of Champ's networks, read from Champ's own config files.

Champ builds its networks from three pieces of configuration:

* ``unet_config.json``: the Stable Diffusion 1.5 ``UNet2DConditionModel`` config. Both UNets
  are built from it (the denoising UNet is inflated to video, the reference UNet has no
  output head).
* ``unet_additional_kwargs.json``: Champ's ``unet_additional_kwargs`` (motion modules,
  inflated GroupNorm).
* ``guidance_encoder_kwargs.json``: the guidance encoders' widths.

:class:`ChampModelConfig` holds the three mappings as read; :meth:`ChampModelConfig.unet_spec`,
:meth:`~ChampModelConfig.motion_spec` and :meth:`~ChampModelConfig.guidance_spec` turn them
into validated specs. Settings that this implementation does not compute (they would change
the network) are refused with :class:`~champ3d.errors.Champ3dInputError` naming the file and
key, never silently ignored.

``unet_config["attention_head_dim"]`` is, as in Champ and SD1.5, the number of attention
*heads* per block (head width = channels / heads) unless ``num_attention_heads`` is given.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from champ3d.errors import Champ3dInputError

UNET_CONFIG_FILE = "unet_config.json"
UNET_ADDITIONAL_KWARGS_FILE = "unet_additional_kwargs.json"
GUIDANCE_ENCODER_KWARGS_FILE = "guidance_encoder_kwargs.json"

# The four guidance types Champ ships, in the order the official configs list them.
CHAMP_GUIDANCE_TYPES = ("depth", "normal", "semantic_map", "dwpose")

_CROSS_ATTN_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock3D")
_PLAIN_DOWN = ("DownBlock2D", "DownBlock3D")
_CROSS_ATTN_UP = ("CrossAttnUpBlock2D", "CrossAttnUpBlock3D")
_PLAIN_UP = ("UpBlock2D", "UpBlock3D")

# UNet config keys whose non-default values would change the computed function. Each maps to
# the only value this implementation (like Champ's inference) supports.
_UNET_FIXED_VALUES = {
    "act_fn": "silu",
    "center_input_sample": False,
    "class_embed_type": None,
    "addition_embed_type": None,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "time_cond_proj_dim": None,
    "time_embedding_type": "positional",
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "timestep_post_act": None,
    "num_class_embeds": None,
    "resnet_time_scale_shift": "default",
    "resnet_skip_time_act": False,
    "resnet_out_scale_factor": 1.0,
    "only_cross_attention": False,
    "dual_cross_attention": False,
    "use_linear_projection": False,
    "upcast_attention": False,
    "cross_attention_norm": None,
    "attention_type": "default",
    "class_embeddings_concat": False,
    "mid_block_only_cross_attention": None,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "transformer_layers_per_block": 1,
    "reverse_transformer_layers_per_block": None,
}
_MID_BLOCK_TYPES = ("UNetMidBlock2DCrossAttn", "UNetMidBlock3DCrossAttn")

_ADDITIONAL_FIXED_VALUES = {
    "use_inflated_groupnorm": True,
    "unet_use_cross_frame_attention": False,
    "unet_use_temporal_attention": False,
    "motion_module_type": "Vanilla",
}

_MOTION_KWARGS_KNOWN = {
    "num_attention_heads",
    "num_transformer_block",
    "attention_block_types",
    "temporal_position_encoding",
    "temporal_position_encoding_max_len",
    "temporal_attention_dim_div",
    "cross_frame_attention_mode",
    "zero_initialize",
}


@dataclass(frozen=True)
class UNetSpec:
    """Validated UNet layout shared by the denoising and the reference UNet."""

    in_channels: int
    out_channels: int
    block_out_channels: tuple[int, ...]
    down_has_attention: tuple[bool, ...]
    up_has_attention: tuple[bool, ...]
    layers_per_block: int
    heads: tuple[int, ...]  # spatial attention heads per down block (up blocks use it reversed)
    cross_attention_dim: int
    norm_num_groups: int
    norm_eps: float
    flip_sin_to_cos: bool
    freq_shift: float
    downsample_padding: int
    mid_block_scale_factor: float
    dropout: float


@dataclass(frozen=True)
class MotionSpec:
    """AnimateDiff-v2 ("Vanilla") motion-module settings of the denoising UNet.

    ``down_levels``/``up_levels`` say which down/up blocks carry motion modules; ``mid`` whether
    the mid block does.
    """

    down_levels: tuple[bool, ...]
    up_levels: tuple[bool, ...]
    mid: bool
    num_attention_heads: int
    num_transformer_block: int
    num_attention_blocks: int
    position_encoding: bool
    position_encoding_max_len: int
    attention_dim_div: int


@dataclass(frozen=True)
class GuidanceEncoderSpec:
    """Widths of one guidance encoder (all types share them)."""

    embedding_channels: int
    input_channels: int
    block_out_channels: tuple[int, ...]
    attention_num_heads: int


@dataclass(frozen=True)
class ChampModelConfig:
    """The three configuration mappings of a Champ model, as read from their files.

    ``source`` names where they came from (a folder, or a description) for error messages.
    """

    unet: Mapping[str, Any]
    unet_additional_kwargs: Mapping[str, Any]
    guidance_encoder: Mapping[str, Any]
    source: str = "<config>"

    @classmethod
    def from_dir(cls, config_dir: str | Path) -> "ChampModelConfig":
        """Read ``unet_config.json``, ``unet_additional_kwargs.json`` and ``guidance_encoder_kwargs.json``."""
        config_dir = Path(config_dir)
        return cls(
            unet=_read_json(config_dir / UNET_CONFIG_FILE),
            unet_additional_kwargs=_read_json(config_dir / UNET_ADDITIONAL_KWARGS_FILE),
            guidance_encoder=_read_json(config_dir / GUIDANCE_ENCODER_KWARGS_FILE),
            source=str(config_dir),
        )

    @classmethod
    def sd15(cls) -> "ChampModelConfig":
        """The configuration of the released Champ checkpoints.

        The SD1.5 UNet config and Champ's ``configs/inference/inference.yaml``
        (``unet_additional_kwargs``; guidance encoder: 320 embedding channels, 3 input
        channels, widths 16/32/96/256).
        """
        return cls(
            unet={
                "act_fn": "silu",
                "attention_head_dim": 8,
                "block_out_channels": [320, 640, 1280, 1280],
                "center_input_sample": False,
                "cross_attention_dim": 768,
                "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                "downsample_padding": 1,
                "flip_sin_to_cos": True,
                "freq_shift": 0,
                "in_channels": 4,
                "layers_per_block": 2,
                "mid_block_scale_factor": 1,
                "norm_eps": 1e-5,
                "norm_num_groups": 32,
                "out_channels": 4,
                "sample_size": 64,
                "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
            },
            unet_additional_kwargs={
                "use_inflated_groupnorm": True,
                "unet_use_cross_frame_attention": False,
                "unet_use_temporal_attention": False,
                "use_motion_module": True,
                "motion_module_resolutions": [1, 2, 4, 8],
                "motion_module_mid_block": True,
                "motion_module_decoder_only": False,
                "motion_module_type": "Vanilla",
                "motion_module_kwargs": {
                    "num_attention_heads": 8,
                    "num_transformer_block": 1,
                    "attention_block_types": ["Temporal_Self", "Temporal_Self"],
                    "temporal_position_encoding": True,
                    "temporal_position_encoding_max_len": 32,
                    "temporal_attention_dim_div": 1,
                },
            },
            guidance_encoder={
                "guidance_embedding_channels": 320,
                "guidance_input_channels": 3,
                "block_out_channels": [16, 32, 96, 256],
            },
            source="champ-sd15",
        )

    # ---------------------------------------------------------------- validated specs

    def unet_spec(self) -> UNetSpec:
        cfg = self.unet
        where = f"{self.source}/{UNET_CONFIG_FILE}"
        for key, value in _UNET_FIXED_VALUES.items():
            if key in cfg and cfg[key] != value:
                raise Champ3dInputError(f"{where}.{key}", f"unsupported value {cfg[key]!r} (Champ uses {value!r})")
        if cfg.get("mid_block_type", _MID_BLOCK_TYPES[0]) not in _MID_BLOCK_TYPES:
            raise Champ3dInputError(f"{where}.mid_block_type", f"unsupported value {cfg['mid_block_type']!r}")
        block_out = tuple(int(c) for c in _require(cfg, "block_out_channels", where))
        n_blocks = len(block_out)
        down_types = list(_require(cfg, "down_block_types", where))
        up_types = list(_require(cfg, "up_block_types", where))
        if len(down_types) != n_blocks or len(up_types) != n_blocks:
            raise Champ3dInputError(where, "down_block_types, up_block_types and block_out_channels differ in length")
        down_attn = tuple(_block_kind(t, _CROSS_ATTN_DOWN, _PLAIN_DOWN, f"{where}.down_block_types") for t in down_types)
        up_attn = tuple(_block_kind(t, _CROSS_ATTN_UP, _PLAIN_UP, f"{where}.up_block_types") for t in up_types)
        heads = cfg.get("num_attention_heads") or _require(cfg, "attention_head_dim", where)
        heads = tuple(int(h) for h in heads) if isinstance(heads, (list, tuple)) else (int(heads),) * n_blocks
        layers = cfg.get("layers_per_block", 2)
        if not isinstance(layers, int):
            raise Champ3dInputError(f"{where}.layers_per_block", "only one value for all blocks is supported")
        cross_dim = cfg.get("cross_attention_dim", 1280)
        if not isinstance(cross_dim, int):
            raise Champ3dInputError(f"{where}.cross_attention_dim", "only one value for all blocks is supported")
        spec = UNetSpec(
            in_channels=int(cfg.get("in_channels", 4)),
            out_channels=int(cfg.get("out_channels", 4)),
            block_out_channels=block_out,
            down_has_attention=down_attn,
            up_has_attention=up_attn,
            layers_per_block=layers,
            heads=heads,
            cross_attention_dim=cross_dim,
            norm_num_groups=int(cfg.get("norm_num_groups", 32)),
            norm_eps=float(cfg.get("norm_eps", 1e-5)),
            flip_sin_to_cos=bool(cfg.get("flip_sin_to_cos", True)),
            freq_shift=float(cfg.get("freq_shift", 0)),
            downsample_padding=int(cfg.get("downsample_padding", 1)),
            mid_block_scale_factor=float(cfg.get("mid_block_scale_factor", 1)),
            dropout=float(cfg.get("dropout", 0.0)),
        )
        for channels, n_heads in zip(block_out, heads):
            if channels % n_heads:
                raise Champ3dInputError(f"{where}.attention_head_dim", f"{channels} channels do not split into {n_heads} heads")
        return spec

    def motion_spec(self) -> MotionSpec:
        cfg = self.unet_additional_kwargs
        where = f"{self.source}/{UNET_ADDITIONAL_KWARGS_FILE}"
        for key, value in _ADDITIONAL_FIXED_VALUES.items():
            if key in cfg and cfg[key] != value:
                raise Champ3dInputError(f"{where}.{key}", f"unsupported value {cfg[key]!r} (Champ uses {value!r})")
        n_blocks = len(self.unet_spec().block_out_channels)
        use = bool(cfg.get("use_motion_module", False))
        resolutions = set(cfg.get("motion_module_resolutions", (1, 2, 4, 8)))
        decoder_only = bool(cfg.get("motion_module_decoder_only", False))
        kwargs = dict(cfg.get("motion_module_kwargs", {}))
        unknown = set(kwargs) - _MOTION_KWARGS_KNOWN
        if unknown:
            raise Champ3dInputError(f"{where}.motion_module_kwargs", f"unknown keys {sorted(unknown)}")
        if kwargs.get("cross_frame_attention_mode") is not None:
            raise Champ3dInputError(f"{where}.motion_module_kwargs.cross_frame_attention_mode", "unsupported")
        block_types = list(kwargs.get("attention_block_types", ("Temporal_Self", "Temporal_Self")))
        if any(t != "Temporal_Self" for t in block_types):
            raise Champ3dInputError(
                f"{where}.motion_module_kwargs.attention_block_types", f"only Temporal_Self is supported, got {block_types}"
            )
        return MotionSpec(
            # Down block i works at resolution 2**i, up block i at 2**(n-1-i) (Champ's "res").
            down_levels=tuple(use and not decoder_only and 2**i in resolutions for i in range(n_blocks)),
            up_levels=tuple(use and 2 ** (n_blocks - 1 - i) in resolutions for i in range(n_blocks)),
            mid=use and bool(cfg.get("motion_module_mid_block", False)),
            num_attention_heads=int(kwargs.get("num_attention_heads", 8)),
            num_transformer_block=int(kwargs.get("num_transformer_block", 2)),
            num_attention_blocks=len(block_types),
            position_encoding=bool(kwargs.get("temporal_position_encoding", False)),
            position_encoding_max_len=int(kwargs.get("temporal_position_encoding_max_len", 24)),
            attention_dim_div=int(kwargs.get("temporal_attention_dim_div", 1)),
        )

    def guidance_spec(self) -> GuidanceEncoderSpec:
        cfg = self.guidance_encoder
        where = f"{self.source}/{GUIDANCE_ENCODER_KWARGS_FILE}"
        block_out = tuple(int(c) for c in cfg.get("block_out_channels", (16, 32, 96, 256)))
        if len(block_out) < 2:
            raise Champ3dInputError(f"{where}.block_out_channels", "needs at least two widths")
        return GuidanceEncoderSpec(
            embedding_channels=int(_require(cfg, "guidance_embedding_channels", where)),
            input_channels=int(cfg.get("guidance_input_channels", 3)),
            block_out_channels=block_out,
            attention_num_heads=int(cfg.get("attention_num_heads", 8)),
        )


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise Champ3dInputError(path, "config file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise Champ3dInputError(path, f"not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict):
        raise Champ3dInputError(path, "expected a JSON object")
    return data


def _require(cfg: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in cfg:
        raise Champ3dInputError(f"{where}.{key}", "missing")
    return cfg[key]


def _block_kind(name: str, attention_names: Sequence[str], plain_names: Sequence[str], where: str) -> bool:
    if name in attention_names:
        return True
    if name in plain_names:
        return False
    raise Champ3dInputError(where, f"unsupported block type {name!r}")


def guidance_types_or_default(types: Optional[Sequence[str]]) -> tuple[str, ...]:
    """``types`` as a tuple, or Champ's four types when ``None``; refuses duplicates."""
    types = CHAMP_GUIDANCE_TYPES if types is None else tuple(types)
    if len(set(types)) != len(types) or not types:
        raise Champ3dInputError("guidance_types", f"expected distinct type names, got {list(types)}")
    return types
