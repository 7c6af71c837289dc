"""Tiny random-weight Champ components for tests, saved in the layouts users bring.

:func:`write_weights_folder` writes a complete weights folder in Champ's ``pretrained_models``
layout (see :mod:`champ3d.generators.champ`): the Champ checkpoints as ``torch.save`` state
dicts (as Champ's training scripts write them), a diffusers VAE folder, a transformers CLIP
vision folder, and the model configuration as JSON.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pytest
import torch
from diffusers import AutoencoderKL
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from champ3d.generators.champ import CHAMP_DIR, CONFIG_DIR, IMAGE_ENCODER_DIR, VAE_DIRS
from champ3d.models import CHAMP_GUIDANCE_TYPES, ChampModel, ChampModelConfig
from champ3d.models.config import GUIDANCE_ENCODER_KWARGS_FILE, UNET_ADDITIONAL_KWARGS_FILE, UNET_CONFIG_FILE
from champ3d.pipelines.champ_pipeline import LATENT_SCALE

# A two-level Champ with the SD1.5 layout rules (cross-attention down block then a plain one,
# motion modules everywhere) at tiny widths. Windows may hold up to 8 frames.
TINY_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 2,
    "block_out_channels": [32, 32],
    "cross_attention_dim": 16,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
TINY_ADDITIONAL = {
    "use_inflated_groupnorm": True,
    "use_motion_module": True,
    "motion_module_resolutions": [1, 2],
    "motion_module_mid_block": True,
    "motion_module_type": "Vanilla",
    "motion_module_kwargs": {
        "num_attention_heads": 8,
        "num_transformer_block": 1,
        "attention_block_types": ["Temporal_Self", "Temporal_Self"],
        "temporal_position_encoding": True,
        "temporal_position_encoding_max_len": 8,
    },
}
TINY_GUIDANCE = {"guidance_embedding_channels": 32, "guidance_input_channels": 3, "block_out_channels": [16, 32, 32, 32]}
# Four 2x levels: the VAE's spatial factor 8, as sd-vae-ft-mse.
TINY_VAE = {
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [16, 16, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "latent_channels": 4,
    "scaling_factor": LATENT_SCALE,
}
TINY_CLIP = {
    "image_size": 224,
    "patch_size": 32,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "projection_dim": TINY_UNET["cross_attention_dim"],
    "hidden_act": "quick_gelu",
}


@pytest.fixture(scope="module", autouse=True)
def one_intra_op_thread():
    """Import into a test module that runs tiny networks: per-op thread hand-off costs more than
    it saves, badly so on a busy machine (tolerances hold either way)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config() -> ChampModelConfig:
    return ChampModelConfig(unet=TINY_UNET, unet_additional_kwargs=TINY_ADDITIONAL, guidance_encoder=TINY_GUIDANCE, source="tiny")


def randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Seed-determined random values (std 0.1) in every parameter, so every tensor matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    return module.eval()


def save_official_layout(model: ChampModel, folder: Path) -> None:
    """Write ``model`` as Champ's training scripts do: full state dicts with torch.save; motion keys separately."""
    folder.mkdir(parents=True, exist_ok=True)
    denoising = model.denoising_unet.state_dict()
    torch.save({k: v for k, v in denoising.items() if "motion_module" not in k}, folder / "denoising_unet.pth")
    torch.save({k: v for k, v in denoising.items() if "motion_module" in k}, folder / "motion_module.pth")
    torch.save(model.reference_unet.state_dict(), folder / "reference_unet.pth")
    for name, encoder in model.guidance_encoders.items():
        torch.save(encoder.state_dict(), folder / f"guidance_encoder_{name}.pth")


def tiny_vae(seed: int) -> AutoencoderKL:
    """A VAE with diffusers' own initialisation (its decoder output stays in a sane range)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return AutoencoderKL(**TINY_VAE).eval()


def tiny_clip(seed: int) -> CLIPVisionModelWithProjection:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)).eval()


def write_weights_folder(folder: Path, guidance_types: Sequence[str] = CHAMP_GUIDANCE_TYPES, seed: int = 0) -> ChampModel:
    """A complete tiny weights folder at ``folder``; returns the Champ model it holds."""
    model = randomised(ChampModel(tiny_config(), guidance_types), seed)
    save_official_layout(model, folder / CHAMP_DIR)
    tiny_vae(seed + 1).save_pretrained(folder / VAE_DIRS[0])
    tiny_clip(seed + 2).save_pretrained(folder / IMAGE_ENCODER_DIR)
    configs = folder / CONFIG_DIR
    configs.mkdir(parents=True, exist_ok=True)
    for name, data in ((UNET_CONFIG_FILE, TINY_UNET), (UNET_ADDITIONAL_KWARGS_FILE, TINY_ADDITIONAL), (GUIDANCE_ENCODER_KWARGS_FILE, TINY_GUIDANCE)):
        (configs / name).write_text(json.dumps(data, indent=2))
    return model
