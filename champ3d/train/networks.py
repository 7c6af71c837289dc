"""The networks of each training stage: built, given their starting weights, and frozen or not.

Stage 1 (Champ's ``train_s1.py``): a :class:`~champ3d.models.ChampModel` whose denoising UNet
has no motion modules. Both UNets start from the SD1.5 UNet (``pretrained_unet_dir``; the
reference UNet ignores SD1.5's output head), the guidance encoders from random values with
a zero output conv. Trained: the denoising UNet, the reference UNet except its last up
block (SD1.5: ``up_blocks.3``, as in Champ), every guidance encoder.

Stage 2 (``train_s2.py``): the full model, every non-motion tensor from a stage-1 weights
folder (its ``champ/`` checkpoints) and every motion-module tensor from an AnimateDiff motion-module file. Trained: the
motion modules only.

Apart from the new stage-1 guidance encoders, every starting tensor must come from a file (a
missing one is an error naming the files); keys a file has and the model lacks are reported
in :class:`InitReport`. The VAE and the
CLIP image encoder are always frozen.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import torch
from diffusers.models.resnet import ResnetBlock2D
from torch import nn
from torch.utils.checkpoint import checkpoint

from champ3d.errors import Champ3dInputError
from champ3d.models.attention import SpatialTransformer
from champ3d.models.champ_model import ChampModel
from champ3d.models.clip import ClipImageConditioner
from champ3d.models.config import ChampModelConfig
from champ3d.models.guidance_encoder import GuidanceEncoder
from champ3d.models.loading import (
    DENOISING_UNET,
    GUIDANCE_ENCODER_PREFIX,
    MOTION_KEY_MARKER,
    REFERENCE_UNET,
    find_weight_file,
    read_state_dict,
)
from champ3d.models.motion_module import MotionModule
from champ3d.train.checkpoints import champ_checkpoints
from champ3d.train.config import TrainConfig

SD_UNET_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
BANK_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class InitReport:
    """Per component and starting-weights file (``"<component> <- <file>"``), the keys the
    component does not have (ignored; e.g. SD1.5's output head for the reference UNet)."""

    unexpected: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        return "\n".join(f"{name}: {len(keys)} keys not in the model (e.g. {keys[0]})" for name, keys in self.unexpected.items() if keys)


def model_config(config: TrainConfig) -> ChampModelConfig:
    """The Champ model configuration of ``config``'s stage (stage 1: no motion modules)."""
    base = ChampModelConfig.from_dir(config.model.config_dir) if config.model.config_dir else ChampModelConfig.sd15()
    if config.stage == 1:
        return replace(base, unet_additional_kwargs={**base.unet_additional_kwargs, "use_motion_module": False})
    return base


def build_stage_model(config: TrainConfig) -> tuple[ChampModel, InitReport]:
    """The stage's model with its starting weights and trainable parameters set (train mode, fp32)."""
    champ_config = model_config(config)
    if config.stage == 2:
        motion = champ_config.motion_spec()
        if motion.position_encoding and config.data.num_frames > motion.position_encoding_max_len:
            problem = f"{config.data.num_frames} frames exceed the motion modules' {motion.position_encoding_max_len}"
            raise Champ3dInputError("data.num_frames", problem)
    bank = config.model.reference_bank_dtype
    # Built without memory or initialisation; every tensor is then loaded from a file or made anew.
    with torch.device("meta"):
        model = ChampModel(champ_config, config.data.guidance_types, bank_dtype=BANK_DTYPES[bank] if bank else None)
    report = InitReport()
    if config.stage == 1:
        unet_file = _sd_unet_file(Path(config.model.pretrained_unet_dir))
        state = read_state_dict(unet_file)
        _load_exactly(model.denoising_unet, DENOISING_UNET, [(unet_file, state)], report)
        own_copy = {k: v.clone() for k, v in state.items()}
        _load_exactly(model.reference_unet, REFERENCE_UNET, [(unet_file, own_copy)], report)
        for name in model.guidance_types:
            # New encoders, initialised as GuidanceEncoder does (random, zero output conv).
            model.guidance_encoders[name] = GuidanceEncoder(champ_config.guidance_spec())
    else:
        weights = champ_checkpoints(Path(config.model.stage1_weights_dir))
        stage1 = find_weight_file(weights, DENOISING_UNET)
        mm_path = Path(config.model.motion_module_path)
        if not mm_path.is_file():
            raise Champ3dInputError(mm_path, "motion-module file not found")
        denoising = {k: v for k, v in read_state_dict(stage1).items() if MOTION_KEY_MARKER not in k}
        sources = [(stage1, denoising), (mm_path, read_state_dict(mm_path))]
        _load_exactly(model.denoising_unet, DENOISING_UNET, sources, report)
        reference = find_weight_file(weights, REFERENCE_UNET)
        _load_exactly(model.reference_unet, REFERENCE_UNET, [(reference, read_state_dict(reference))], report)
        for name, encoder in model.guidance_encoders.items():
            stem = GUIDANCE_ENCODER_PREFIX + name
            path = find_weight_file(weights, stem)
            _load_exactly(encoder, stem, [(path, read_state_dict(path))], report)
    set_trainable(model, config.stage)
    return model.train(), report


def set_trainable(model: ChampModel, stage: int) -> None:
    model.requires_grad_(False)
    if stage == 1:
        model.denoising_unet.requires_grad_(True)
        model.guidance_encoders.requires_grad_(True)
        frozen = f"up_blocks.{len(model.reference_unet.up_blocks) - 1}."
        for name, param in model.reference_unet.named_parameters():
            param.requires_grad_(not name.startswith(frozen))
    else:
        for name, param in model.denoising_unet.named_parameters():
            param.requires_grad_(MOTION_KEY_MARKER in name)


def enable_gradient_checkpointing(model: ChampModel) -> None:
    """Recompute activations in the backward pass instead of keeping them.

    Checkpointed: every ResNet, spatial transformer and motion module of the denoising
    UNet, and the ResNets of the reference UNet. The reference UNet's transformers are not:
    they record the reference bank while they run, and a recomputation would record it again.
    """
    kinds = (ResnetBlock2D, SpatialTransformer, MotionModule)
    for module in model.denoising_unet.modules():
        if isinstance(module, kinds):
            module.forward = _checkpointed(module.forward)
    for module in model.reference_unet.modules():
        if isinstance(module, ResnetBlock2D):
            module.forward = _checkpointed(module.forward)


def _checkpointed(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


def load_clip(image_encoder_dir: str | Path) -> ClipImageConditioner:
    return ClipImageConditioner.from_dir(image_encoder_dir).requires_grad_(False).eval()


def _sd_unet_file(unet_dir: Path) -> Path:
    for name in SD_UNET_WEIGHT_FILES:
        if (unet_dir / name).is_file():
            return unet_dir / name
    raise Champ3dInputError(unet_dir, f"no SD1.5 UNet weights ({' or '.join(SD_UNET_WEIGHT_FILES)})")


def _load_exactly(
    module: nn.Module, component: str, sources: list[tuple[Path, Mapping[str, torch.Tensor]]], report: InitReport
) -> None:
    """Load ``sources`` in order into ``module`` (their tensors become its tensors, floats as
    float32); every tensor of the module must be covered."""
    expected = module.state_dict()
    merged = {}
    for path, state in sources:
        unexpected = report.unexpected.setdefault(f"{component} <- {path}", [])
        for key, tensor in state.items():
            if key not in expected:
                unexpected.append(key)
                continue
            if tuple(tensor.shape) != tuple(expected[key].shape):
                shapes = f"{tuple(tensor.shape)}, the model expects {tuple(expected[key].shape)}"
                raise Champ3dInputError(path, f"tensor {key!r} has shape {shapes}")
            merged[key] = tensor.float() if tensor.is_floating_point() else tensor
    missing = [key for key in expected if key not in merged]
    if missing:
        where = " + ".join(str(path) for path, _ in sources)
        raise Champ3dInputError(where, f"{len(missing)} tensors of the {component} are in no file (e.g. {missing[:3]})")
    module.load_state_dict(merged, assign=True)
