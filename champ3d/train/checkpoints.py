"""What a training run writes into its ``output_dir``::

    config.yaml               the resolved training config
    losses.jsonl              one {"step", "loss", "lr"} line per optimiser step
    checkpoint-<step>/        resumable state: accelerate's save_state (model.safetensors,
                              optimizer.bin, ...) plus training_state.json {"step", "stage"}
    weights-<step>/           a weights folder for ``champ3d animate --generator champ --weights``
                              (Champ's ``pretrained_models`` layout, see champ3d.generators.champ):
        champ/                the model in Champ's checkpoint layout, for load_champ_model:
                              denoising_unet, motion_module (the ``motion_modules.`` keys; none
                              after stage 1), reference_unet, guidance_encoder_<type>
        configs/              the model configuration (stage 1: without motion modules)
        sd-vae-ft-mse, image_encoder   links to the VAE and CLIP folders the run used

Weights are plain tensors: ``.safetensors``, or ``.pth`` written by ``torch.save`` of a
flat ``{name: tensor}`` dict (loadable with ``weights_only=True``; the format Champ's own
scripts read). No code is ever pickled. Every folder appears under its final name only
once complete.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file

from champ3d.errors import Champ3dInputError
from champ3d.generators.champ import CHAMP_DIR, CONFIG_DIR, IMAGE_ENCODER_DIR, VAE_DIRS
from champ3d.io.atomic import atomic_output_dir
from champ3d.models.champ_model import ChampModel
from champ3d.models.config import GUIDANCE_ENCODER_KWARGS_FILE, UNET_ADDITIONAL_KWARGS_FILE, UNET_CONFIG_FILE
from champ3d.models.loading import champ_layout_state_dicts

TRAINING_STATE = "training_state.json"
CHECKPOINT_PREFIX = "checkpoint-"
WEIGHTS_PREFIX = "weights-"
_NUMBERED = re.compile(r"^(checkpoint|weights)-(\d+)$")


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / f"{CHECKPOINT_PREFIX}{step}"


def weights_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / f"{WEIGHTS_PREFIX}{step}"


def save_weights_folder(
    model: ChampModel, folder: Path, weights_format: str, vae_dir: Path, image_encoder_dir: Path
) -> Path:
    """Write the weights folder ``folder`` (layout in the module docstring), replacing an existing one."""
    Path(folder).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output_dir(folder, overwrite=True) as tmp:
        tmp = Path(tmp)
        champ = tmp / CHAMP_DIR
        champ.mkdir()
        for stem, state in champ_layout_state_dicts(model).items():
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
            if weights_format == "safetensors":
                save_file(tensors, str(champ / f"{stem}.safetensors"), metadata={"format": "pt"})
            else:
                torch.save(tensors, champ / f"{stem}.pth")
        configs = tmp / CONFIG_DIR
        configs.mkdir()
        config = model.config
        for name, data in ((UNET_CONFIG_FILE, config.unet), (UNET_ADDITIONAL_KWARGS_FILE, config.unet_additional_kwargs),
                           (GUIDANCE_ENCODER_KWARGS_FILE, config.guidance_encoder)):
            (configs / name).write_text(json.dumps(data, indent=2))
        (tmp / VAE_DIRS[0]).symlink_to(Path(vae_dir).resolve(), target_is_directory=True)
        (tmp / IMAGE_ENCODER_DIR).symlink_to(Path(image_encoder_dir).resolve(), target_is_directory=True)
    return Path(folder)


def champ_checkpoints(weights_folder: Path) -> Path:
    """The Champ checkpoint folder inside a weights folder."""
    return Path(weights_folder) / CHAMP_DIR


def write_training_state(folder: Path, step: int, stage: int) -> None:
    (Path(folder) / TRAINING_STATE).write_text(json.dumps({"step": step, "stage": stage}))


def read_training_state(folder: Path) -> dict:
    path = Path(folder) / TRAINING_STATE
    try:
        state = json.loads(path.read_text())
        return {"step": int(state["step"]), "stage": int(state["stage"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Champ3dInputError(path, f"not a readable training state ({exc})") from exc


def resolve_checkpoint(path: Path) -> Path:
    """``path`` itself when it is a checkpoint folder, else its newest ``checkpoint-<step>`` subfolder."""
    path = Path(path)
    if (path / TRAINING_STATE).is_file():
        return path
    found = numbered(path, CHECKPOINT_PREFIX)
    if not found:
        raise Champ3dInputError(path, f"no checkpoint here (a {CHECKPOINT_PREFIX}<step> folder or a run's output folder)")
    return found[-1]


def numbered(output_dir: Path, prefix: str) -> list[Path]:
    """The complete ``<prefix><step>`` folders of ``output_dir``, oldest step first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        match = _NUMBERED.match(child.name)
        if match and child.is_dir() and child.name.startswith(prefix):
            found.append((int(match.group(2)), child))
    return [p for _, p in sorted(found)]


def prune_checkpoints(output_dir: Path, keep: Optional[int]) -> None:
    """Delete all but the newest ``keep`` checkpoint folders (``None`` keeps all)."""
    if keep is None:
        return
    for old in numbered(output_dir, CHECKPOINT_PREFIX)[:-keep]:
        shutil.rmtree(old)


def commit_dir(temp: Path, final: Path) -> None:
    """Rename the finished folder ``temp`` to ``final``, replacing an older ``final``."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(temp, final)
