"""Champ's networks (checkpoint-compatible), their configuration and checkpoint loading."""
from champ3d.models.champ_model import ChampForwardOutput, ChampModel
from champ3d.models.config import CHAMP_GUIDANCE_TYPES, ChampModelConfig
from champ3d.models.loading import LoadReport, convert_champ_weights, load_champ_model

__all__ = [
    "CHAMP_GUIDANCE_TYPES",
    "ChampForwardOutput",
    "ChampModel",
    "ChampModelConfig",
    "LoadReport",
    "convert_champ_weights",
    "load_champ_model",
]
