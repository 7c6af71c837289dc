"""Training configuration: an OmegaConf YAML file checked against :class:`TrainConfig`.

``configs/train/stage1.yaml`` and ``configs/train/stage2.yaml`` hold Champ's settings at
SD1.5 size. A file may leave any key out (the defaults below apply) but may not add keys
the schema does not know. Command-line overrides are ``key=value`` dot-lists
(``solver.batch_size=2``) applied on top of the file. Relative paths are relative to the
working directory, as in Champ's own configs. Every problem raises
:class:`~champ3d.errors.Champ3dInputError` naming the file (or ``override``) and the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from champ3d.errors import Champ3dInputError
from champ3d.models.config import CHAMP_GUIDANCE_TYPES

MIXED_PRECISION = ("no", "fp16", "bf16")
WEIGHTS_FORMATS = ("safetensors", "pth")
BANK_DTYPES = ("float16", "bfloat16")


@dataclass
class DataConfig:
    """Clip folders and how samples are cut from them (see :mod:`champ3d.train.dataset`).

    ``clips``: clip folders, or folders whose subfolders are clip folders.
    ``image_size``: training size (H, W), multiples of 8. ``crop_scale``: range of the
    crop's area relative to the largest crop of the training aspect ratio.
    ``sample_margin`` (stage 1): preferred distance between reference and target frame.
    ``num_frames``/``frame_stride`` (stage 2): frames per sample and the step between them.
    """

    clips: list[str] = field(default_factory=list)
    guidance_types: list[str] = field(default_factory=lambda: list(CHAMP_GUIDANCE_TYPES))
    image_size: list[int] = field(default_factory=lambda: [768, 768])
    crop_scale: list[float] = field(default_factory=lambda: [0.9, 1.0])
    sample_margin: int = 30
    num_frames: int = 24
    frame_stride: int = 4
    num_workers: int = 4


@dataclass
class ModelConfig:
    """Where the networks come from; every path is a local folder or file.

    ``config_dir``: Champ's three model config files (``unet_config.json``,
    ``unet_additional_kwargs.json``, ``guidance_encoder_kwargs.json``); None is the
    released SD1.5-sized configuration. Stage 1 starts both UNets from
    ``pretrained_unet_dir`` (SD1.5's ``unet`` folder); stage 2 starts from the stage-1
    weights folder ``stage1_weights_dir`` (a stage-1 run's ``weights-<step>``, see
    :mod:`champ3d.train.checkpoints`) and the AnimateDiff motion-module file
    ``motion_module_path``. ``reference_bank_dtype``: the dtype the reference bank is
    rounded to (Champ: float16), or None to keep the compute dtype.
    """

    config_dir: Optional[str] = None
    pretrained_unet_dir: Optional[str] = None
    stage1_weights_dir: Optional[str] = None
    motion_module_path: Optional[str] = None
    vae_dir: str = "pretrained_models/sd-vae-ft-mse"
    image_encoder_dir: str = "pretrained_models/image_encoder"
    reference_bank_dtype: Optional[str] = "float16"


@dataclass
class NoiseConfig:
    """The training noise schedule and loss (see :mod:`champ3d.train.objective`)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    noise_offset: float = 0.05
    snr_gamma: Optional[float] = 5.0
    uncond_ratio: float = 0.1


@dataclass
class SolverConfig:
    """Optimisation. ``batch_size`` is per process and per accumulation step."""

    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "fp16"
    gradient_checkpointing: bool = False
    learning_rate: float = 1e-5
    lr_warmup_steps: int = 1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    max_train_steps: int = 100000


@dataclass
class CheckpointConfig:
    """``checkpointing_steps``: resumable state every N optimiser steps (and at the end);
    ``checkpoints_total_limit`` keeps only the newest N of them (None keeps all).
    ``save_weights_steps``: Champ-layout weights every N steps (and at the end), as
    ``safetensors`` or ``pth`` (``torch.save`` of plain tensors, readable by the official code)."""

    checkpointing_steps: int = 2000
    checkpoints_total_limit: Optional[int] = 3
    save_weights_steps: int = 2000
    weights_format: str = "safetensors"


@dataclass
class TrainConfig:
    stage: int = 1
    seed: int = 42
    output_dir: str = "outputs/train"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read ``path``, apply ``overrides`` (``key=value``), check the values; a :class:`TrainConfig`."""
    path = Path(path)
    schema = OmegaConf.structured(TrainConfig)
    try:
        from_file = OmegaConf.load(path)
    except FileNotFoundError as exc:
        raise Champ3dInputError(path, "training config not found") from exc
    except (OmegaConfBaseException, ValueError, OSError) as exc:
        raise Champ3dInputError(path, f"not a readable YAML file ({_first_line(exc)})") from exc
    merged = _merge(schema, from_file, path, name_key=True)
    for item in overrides:
        if "=" not in item:
            raise Champ3dInputError("override", f"expected key=value, got {item!r}")
        merged = _merge(merged, OmegaConf.from_dotlist([item]), f"override {item}", name_key=False)
    config = OmegaConf.to_object(merged)
    check_train_config(config, str(path))
    return config


def config_yaml(config: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def check_train_config(config: TrainConfig, where: str) -> None:
    """Refuse values the trainer cannot use, naming ``where.key``."""

    def fail(key: str, problem: str):
        raise Champ3dInputError(f"{where}.{key}", problem)

    if config.stage not in (1, 2):
        fail("stage", f"must be 1 or 2, got {config.stage}")
    model = config.model
    if config.stage == 1 and not model.pretrained_unet_dir:
        fail("model.pretrained_unet_dir", "stage 1 starts from the SD1.5 UNet folder; set it")
    if config.stage == 2:
        for key in ("stage1_weights_dir", "motion_module_path"):
            if not getattr(model, key):
                fail(f"model.{key}", "stage 2 needs it; set it")
    if model.reference_bank_dtype is not None and model.reference_bank_dtype not in BANK_DTYPES:
        fail("model.reference_bank_dtype", f"must be one of {BANK_DTYPES} or null")
    data = config.data
    if not data.clips:
        fail("data.clips", "no clip folders given")
    if not data.guidance_types or len(set(data.guidance_types)) != len(data.guidance_types):
        fail("data.guidance_types", f"expected distinct type names, got {data.guidance_types}")
    if len(data.image_size) != 2 or any(s < 8 or s % 8 for s in data.image_size):
        fail("data.image_size", f"expected [H, W], positive multiples of 8, got {data.image_size}")
    if len(data.crop_scale) != 2 or not 0 < data.crop_scale[0] <= data.crop_scale[1] <= 1:
        fail("data.crop_scale", f"expected [low, high] with 0 < low <= high <= 1, got {data.crop_scale}")
    for key in ("num_frames", "frame_stride"):
        if getattr(data, key) < 1:
            fail(f"data.{key}", "must be >= 1")
    if data.sample_margin < 0 or data.num_workers < 0:
        fail("data", "sample_margin and num_workers must be >= 0")
    noise = config.noise
    if not 0 <= noise.uncond_ratio <= 1:
        fail("noise.uncond_ratio", f"must be in [0, 1], got {noise.uncond_ratio}")
    if noise.snr_gamma is not None and noise.snr_gamma <= 0:
        fail("noise.snr_gamma", "must be positive or null")
    solver = config.solver
    if solver.mixed_precision not in MIXED_PRECISION:
        fail("solver.mixed_precision", f"must be one of {MIXED_PRECISION}, got {solver.mixed_precision!r}")
    for key in ("batch_size", "gradient_accumulation_steps", "max_train_steps"):
        if getattr(solver, key) < 1:
            fail(f"solver.{key}", "must be >= 1")
    if solver.learning_rate <= 0 or solver.lr_warmup_steps < 0 or solver.max_grad_norm <= 0:
        fail("solver", "learning_rate and max_grad_norm must be positive, lr_warmup_steps >= 0")
    ckpt = config.checkpoint
    if ckpt.checkpointing_steps < 1 or ckpt.save_weights_steps < 1:
        fail("checkpoint", "checkpointing_steps and save_weights_steps must be >= 1")
    if ckpt.checkpoints_total_limit is not None and ckpt.checkpoints_total_limit < 1:
        fail("checkpoint.checkpoints_total_limit", "must be >= 1 or null")
    if ckpt.weights_format not in WEIGHTS_FORMATS:
        fail("checkpoint.weights_format", f"must be one of {WEIGHTS_FORMATS}, got {ckpt.weights_format!r}")


def _merge(base, other, where, name_key: bool):
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) if name_key else None
        raise Champ3dInputError(f"{where}.{key}" if key else where, _first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
