"""Loading Champ checkpoints (Champ's ``pretrained_models/champ`` layout) and converting them to safetensors.

A weights directory holds, per component, ``<stem>.safetensors`` or ``<stem>.pth`` (the
safetensors file wins when both exist):

* ``denoising_unet`` + ``motion_module``: the denoising UNet. The motion file is applied first
  and the denoising file on top, so a key in both takes the denoising file's value (Champ's
  precedence); such keys are reported as ``overridden``.
* ``reference_unet``: the reference UNet.
* ``guidance_encoder_<type>``: one per guidance type.

``.pth`` files are read with ``torch.load(weights_only=True)`` only: a pickle that would run
code is refused. Every problem a user can fix (missing file, unreadable or unsafe file, wrong
tensor shape, uncovered model tensors) raises :class:`~champ3d.errors.Champ3dInputError`
naming the file.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from champ3d.errors import Champ3dInputError
from champ3d.models.attention import OFFICIAL_BANK_DTYPE
from champ3d.models.champ_model import ChampModel
from champ3d.models.config import ChampModelConfig

DENOISING_UNET = "denoising_unet"
MOTION_MODULE = "motion_module"
REFERENCE_UNET = "reference_unet"
GUIDANCE_ENCODER_PREFIX = "guidance_encoder_"
WEIGHT_SUFFIXES = (".safetensors", ".pth")
MOTION_KEY_MARKER = "motion_modules."


@dataclass
class FileCoverage:
    """What one checkpoint file contributed: ``used`` keys, keys the model does not have
    (``unexpected``, ignored) and keys another file replaced (``overridden``)."""

    path: Path
    used: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)


@dataclass
class LoadReport:
    """Key coverage of one load: per file, and per model component the tensors no file provided."""

    files: dict[str, FileCoverage] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every model tensor came from a file and no file had unexpected keys."""
        return not any(self.missing.values()) and not any(f.unexpected for f in self.files.values())

    def summary(self) -> str:
        lines = []
        for name, cov in self.files.items():
            lines.append(
                f"{name}: {len(cov.used)} keys used, {len(cov.unexpected)} unexpected, {len(cov.overridden)} overridden"
            )
        for component, keys in self.missing.items():
            if keys:
                lines.append(f"{component}: {len(keys)} tensors not in any file (e.g. {keys[0]})")
        return "\n".join(lines)


def find_weight_file(weights_dir: str | Path, stem: str) -> Path:
    """``<stem>.safetensors`` or ``<stem>.pth`` in ``weights_dir``."""
    weights_dir = Path(weights_dir)
    for suffix in WEIGHT_SUFFIXES:
        path = weights_dir / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise Champ3dInputError(weights_dir / f"{stem}.pth", f"checkpoint not found ({stem}.safetensors or {stem}.pth)")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` dict from a safetensors file or a weights-only ``torch.save`` file."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            # Copies into freshly allocated (aligned, file-independent) memory: tensors left
            # on the file mapping are unaligned, which changes CPU kernel results in the last
            # bits, and would change if the file were rewritten.
            state = {key: tensor.clone() for key, tensor in load_file(str(path), device="cpu").items()}
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _first_line(exc)
        raise Champ3dInputError(path, f"refused: not loadable with torch.load(weights_only=True) ({reason})") from exc
    except (SafetensorError, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise Champ3dInputError(path, f"not a readable checkpoint ({_first_line(exc)})") from exc
    flat = isinstance(state, Mapping) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    if not flat:
        raise Champ3dInputError(path, "expected a flat mapping of tensor names to tensors")
    return dict(state)


def load_champ_model(
    weights_dir: str | Path,
    config: ChampModelConfig,
    guidance_types: Optional[Sequence[str]] = None,
    *,
    allow_missing: bool = False,
    bank_dtype: Optional[torch.dtype] = OFFICIAL_BANK_DTYPE,
    device: torch.device | str = "cpu",
    dtype: Optional[torch.dtype] = torch.float32,
) -> tuple[ChampModel, LoadReport]:
    """Build a :class:`ChampModel` from ``config`` and load Champ checkpoints from ``weights_dir``.

    Only the encoders of ``guidance_types`` (default: Champ's four) are built and loaded.
    Tensors that no file provides raise unless ``allow_missing``, in which case they keep
    their initial values and are listed in the report (Champ itself keeps SD1.5 values
    there). Unexpected keys are ignored and reported. ``dtype=None`` keeps the checkpoint's
    dtypes. The model is returned in eval mode.
    """
    # Without allow_missing every tensor comes from a file, so the model is built without
    # memory or initialisation (meta device) and the loaded tensors are assigned to it.
    with torch.device("cpu" if allow_missing else "meta"):
        model = ChampModel(config, guidance_types, bank_dtype=bank_dtype)
    report = LoadReport()
    denoising = [find_weight_file(weights_dir, MOTION_MODULE), find_weight_file(weights_dir, DENOISING_UNET)]
    _load_component(model.denoising_unet, DENOISING_UNET, denoising, report, allow_missing)
    reference = [find_weight_file(weights_dir, REFERENCE_UNET)]
    _load_component(model.reference_unet, REFERENCE_UNET, reference, report, allow_missing)
    for name, encoder in model.guidance_encoders.items():
        stem = GUIDANCE_ENCODER_PREFIX + name
        _load_component(encoder, stem, [find_weight_file(weights_dir, stem)], report, allow_missing)
    return model.to(device=device, dtype=dtype).eval(), report


def _load_component(
    module: nn.Module, component: str, paths: Sequence[Path], report: LoadReport, allow_missing: bool
) -> None:
    """Load ``paths`` in order into ``module`` (later files override earlier ones) and record coverage."""
    expected = module.state_dict()
    merged: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    for path in paths:
        state = read_state_dict(path)
        coverage = FileCoverage(path=path)
        report.files[path.name] = coverage
        for key, tensor in state.items():
            if key not in expected:
                coverage.unexpected.append(key)
                continue
            if tuple(tensor.shape) != tuple(expected[key].shape):
                shapes = f"{tuple(tensor.shape)}, the model expects {tuple(expected[key].shape)}"
                raise Champ3dInputError(path, f"tensor {key!r} has shape {shapes}")
            if key in source:
                report.files[source[key]].overridden.append(key)
                report.files[source[key]].used.remove(key)
            merged[key] = tensor
            source[key] = path.name
            coverage.used.append(key)
    missing = [key for key in expected if key not in merged]
    if missing and not allow_missing:
        where = paths[-1] if len(paths) == 1 else " + ".join(str(p) for p in paths)
        problem = f"{len(missing)} tensors of the {component} are in no checkpoint file (e.g. {missing[:3]})"
        raise Champ3dInputError(where, problem)
    module.load_state_dict(merged, strict=False, assign=True)
    report.missing[component] = missing


def champ_layout_state_dicts(model: ChampModel) -> dict[str, dict[str, torch.Tensor]]:
    """``{file stem: state dict}`` of ``model`` in Champ's checkpoint layout (the motion
    module's keys split from the denoising UNet's, one file per guidance encoder)."""
    denoising = model.denoising_unet.state_dict()
    parts = {
        DENOISING_UNET: {k: v for k, v in denoising.items() if MOTION_KEY_MARKER not in k},
        MOTION_MODULE: {k: v for k, v in denoising.items() if MOTION_KEY_MARKER in k},
        REFERENCE_UNET: model.reference_unet.state_dict(),
    }
    for name, encoder in model.guidance_encoders.items():
        parts[GUIDANCE_ENCODER_PREFIX + name] = encoder.state_dict()
    return parts


def convert_champ_weights(
    weights_dir: str | Path,
    out_dir: str | Path,
    config: ChampModelConfig,
    guidance_types: Optional[Sequence[str]] = None,
) -> list[Path]:
    """Load a Champ weights directory and write it back as safetensors, in the same layout.

    Writes ``denoising_unet``, ``motion_module`` (the ``motion_modules.`` keys of the denoising
    UNet), ``reference_unet`` and ``guidance_encoder_<type>`` ``.safetensors`` files, keeping
    the checkpoints' dtypes; each is written under a temporary name and then renamed. Returns
    the written paths.
    """
    model, _ = load_champ_model(weights_dir, config, guidance_types, dtype=None)
    parts = champ_layout_state_dicts(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, state in parts.items():
        path = out_dir / f"{stem}.safetensors"
        _save_safetensors_atomically({k: v.contiguous() for k, v in state.items()}, path)
        written.append(path)
    return written


def _save_safetensors_atomically(state: dict[str, torch.Tensor], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"format": "pt"})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
