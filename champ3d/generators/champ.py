"""Champ's diffusion generator: a guidance folder and a reference image in, an mp4 out.

Weights folder (``champ3d animate --generator champ --weights DIR``; Champ's
``pretrained_models`` layout)::

    DIR/champ/denoising_unet.pth          Champ's checkpoints, ``.pth`` or ``.safetensors``
    DIR/champ/motion_module.pth           (read as :mod:`champ3d.models.loading` describes;
    DIR/champ/reference_unet.pth           a pickle that would run code is refused)
    DIR/champ/guidance_encoder_<type>.pth one per guidance type
    DIR/sd-vae-ft-mse/                    diffusers AutoencoderKL folder (also found as DIR/vae/)
    DIR/image_encoder/                    transformers CLIPVisionModelWithProjection folder
    DIR/configs/                          optional: unet_config.json, unet_additional_kwargs.json and
                                          guidance_encoder_kwargs.json (all three, see
                                          champ3d.models.config; default: the released SD1.5-sized
                                          Champ) and scheduler_config.json (default: Champ's DDIM)

Nothing else is read and nothing is downloaded. (Champ's SD1.5 ``unet`` folder is not needed:
the Champ checkpoints must cover every tensor.)

Guidance types. The model gets one encoder per type, summed in this order: the types with an
encoder checkpoint in ``DIR/champ`` (or the settings' ``guidance_types``; Champ's four first,
in Champ's order, then others by name), then the settings' ``extra_guidance_types``. An extra
type (e.g. ``textured``, the textured-body render) is loaded from
``guidance_encoder_<type>`` when that checkpoint exists and is otherwise created with its
output convolution zeroed, as Champ initialises its encoders, so it adds exactly zero
until trained. Every type used must be in the guidance folder; folder types without an
encoder (``mask``) are not read.

Settings: ``configs/generate/champ.yaml`` holds every key with its default and meaning; a
caller's mapping or YAML file overrides single keys.

Output: an H.264 mp4 (:class:`champ3d.io.VideoWriter`), one frame per guidance frame, at the
generation size, written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
import yaml
from tqdm import tqdm

from champ3d import CONFIG_DIR
from champ3d.errors import Champ3dInputError
from champ3d.guidance_folder import GuidanceFolder
from champ3d.io.writers import VideoWriter
from champ3d.models import CHAMP_GUIDANCE_TYPES, ChampModel, ChampModelConfig
from champ3d.models.config import GUIDANCE_ENCODER_KWARGS_FILE, UNET_ADDITIONAL_KWARGS_FILE, UNET_CONFIG_FILE
from champ3d.models.guidance_encoder import GuidanceEncoder
from champ3d.models.loading import GUIDANCE_ENCODER_PREFIX, WEIGHT_SUFFIXES, find_weight_file
from champ3d.pipelines import ChampPipeline, FolderGuidanceSource, make_context_schedule
from champ3d.pipelines.champ_pipeline import VAE_SCALE_FACTOR

SETTINGS_FILE = CONFIG_DIR / "generate" / "champ.yaml"

CHAMP_DIR = "champ"
VAE_DIRS = ("sd-vae-ft-mse", "vae")
IMAGE_ENCODER_DIR = "image_encoder"
CONFIG_DIR = "configs"
MODEL_CONFIG_FILES = (UNET_CONFIG_FILE, UNET_ADDITIONAL_KWARGS_FILE, GUIDANCE_ENCODER_KWARGS_FILE)
SCHEDULER_CONFIG_FILE = "scheduler_config.json"

SCHEDULES = {"sliding": "sliding", "official": "uniform"}  # settings name -> champ3d.pipelines.context name
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


# ---------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class GenerateSettings:
    """Validated generation settings; ``configs/generate/champ.yaml`` documents each key."""

    steps: int
    guidance_scale: float
    seed: int
    context_frames: int
    context_overlap: int
    context_batch_size: int
    schedule: str
    dtype: str
    device: str
    width: Optional[int]
    height: Optional[int]
    decode_chunk_size: int
    guidance_types: Optional[tuple[str, ...]]
    extra_guidance_types: tuple[str, ...]

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def torch_dtype(self, device: torch.device) -> torch.dtype:
        """``auto``: fp16 on CUDA (Champ's ``weight_dtype``), fp32 elsewhere."""
        if self.dtype == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        return DTYPES[self.dtype]

    def size(self, folder: GuidanceFolder) -> tuple[int, int]:
        """(width, height) to generate at: the settings' or the folder's rounded to multiples of 8."""
        if self.width is not None:
            return self.width, self.height
        height, width = folder.size
        return _multiple_of(width, VAE_SCALE_FACTOR), _multiple_of(height, VAE_SCALE_FACTOR)


def load_settings(overrides: Mapping[str, Any] | str | Path | None = None) -> GenerateSettings:
    """``configs/generate/champ.yaml`` with ``overrides`` on top: a mapping of some of its keys,
    or a YAML file holding one."""
    defaults = _read_yaml(SETTINGS_FILE)
    known = {f.name for f in fields(GenerateSettings)}
    if set(defaults) != known:
        raise Champ3dInputError(SETTINGS_FILE, f"expected exactly the keys {sorted(known)}, got {sorted(defaults)}")
    where = "config"
    if isinstance(overrides, (str, Path)):
        where, overrides = str(overrides), _read_yaml(Path(overrides))
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise Champ3dInputError(f"{where}.{unknown[0]}", f"unknown generation setting (known: {sorted(known)})")
    return _validated({**defaults, **overrides}, where)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise Champ3dInputError(path, f"cannot read the generation settings ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Champ3dInputError(path, "expected a mapping of generation settings")
    return data


def _validated(v: dict, where: str) -> GenerateSettings:
    def integer(key: str, minimum: int) -> int:
        value = v[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise Champ3dInputError(f"{where}.{key}", f"expected an integer >= {minimum}, got {value!r}")
        return value

    def choice(key: str, allowed: Sequence[str]) -> str:
        if v[key] not in allowed:
            raise Champ3dInputError(f"{where}.{key}", f"expected one of {list(allowed)}, got {v[key]!r}")
        return v[key]

    def names(key: str) -> tuple[str, ...]:
        value = v[key]
        if not isinstance(value, (list, tuple)) or not all(isinstance(n, str) and n for n in value):
            raise Champ3dInputError(f"{where}.{key}", f"expected a list of guidance type names, got {value!r}")
        if len(set(value)) != len(value):
            raise Champ3dInputError(f"{where}.{key}", f"names repeat: {list(value)}")
        return tuple(value)

    if not isinstance(v["guidance_scale"], (int, float)) or isinstance(v["guidance_scale"], bool):
        raise Champ3dInputError(f"{where}.guidance_scale", f"expected a number, got {v['guidance_scale']!r}")
    if (v["width"] is None) != (v["height"] is None):
        raise Champ3dInputError(f"{where}.width", "set both width and height, or neither")
    for key in ("width", "height"):
        if v[key] is not None and integer(key, VAE_SCALE_FACTOR) % VAE_SCALE_FACTOR:
            raise Champ3dInputError(f"{where}.{key}", f"must be a multiple of {VAE_SCALE_FACTOR}, got {v[key]}")
    device = v["device"]
    if device != "auto":
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise Champ3dInputError(f"{where}.device", f"expected auto, cpu, cuda or cuda:N, got {device!r}") from exc
    overlap = integer("context_overlap", 0)
    frames = integer("context_frames", 1)
    if overlap >= frames:
        raise Champ3dInputError(f"{where}.context_overlap", f"must be smaller than context_frames ({frames}), got {overlap}")
    return GenerateSettings(
        steps=integer("steps", 1),
        guidance_scale=float(v["guidance_scale"]),
        seed=integer("seed", 0),
        context_frames=frames,
        context_overlap=overlap,
        context_batch_size=integer("context_batch_size", 1),
        schedule=choice("schedule", tuple(SCHEDULES)),
        dtype=choice("dtype", ("auto", *DTYPES)),
        device=str(device),
        width=v["width"],
        height=v["height"],
        decode_chunk_size=integer("decode_chunk_size", 1),
        guidance_types=None if v["guidance_types"] is None else names("guidance_types"),
        extra_guidance_types=names("extra_guidance_types"),
    )


def _multiple_of(value: int, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


# ---------------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class WeightsFolder:
    """The parts of a weights folder (layout in the module docstring)."""

    champ: Path
    vae: Path
    image_encoder: Path
    model_config: ChampModelConfig
    scheduler_config: Optional[Path]

    @classmethod
    def resolve(cls, weights_dir: str | Path) -> "WeightsFolder":
        root = Path(weights_dir)
        if not root.is_dir():
            raise Champ3dInputError(root, "weights folder not found")
        if any((root / f"denoising_unet{suffix}").is_file() for suffix in WEIGHT_SUFFIXES):
            problem = f"this is the Champ checkpoint folder; pass the folder that holds {CHAMP_DIR}/, sd-vae-ft-mse/ and image_encoder/"
            raise Champ3dInputError(root, problem)
        champ = root / CHAMP_DIR
        if not champ.is_dir():
            raise Champ3dInputError(champ, "Champ checkpoint folder not found")
        vae = next((root / name for name in VAE_DIRS if (root / name).is_dir()), None)
        if vae is None:
            raise Champ3dInputError(root / VAE_DIRS[0], "VAE folder not found")
        image_encoder = root / IMAGE_ENCODER_DIR
        if not image_encoder.is_dir():
            raise Champ3dInputError(image_encoder, "CLIP image encoder folder not found")
        configs = root / CONFIG_DIR
        present = [name for name in MODEL_CONFIG_FILES if (configs / name).is_file()]
        if present and len(present) != len(MODEL_CONFIG_FILES):
            missing = next(name for name in MODEL_CONFIG_FILES if name not in present)
            raise Champ3dInputError(configs / missing, "missing: the model configuration needs all of " + ", ".join(MODEL_CONFIG_FILES))
        model_config = ChampModelConfig.from_dir(configs) if present else ChampModelConfig.sd15()
        scheduler = configs / SCHEDULER_CONFIG_FILE
        return cls(champ, vae, image_encoder, model_config, scheduler if scheduler.is_file() else None)

    def encoder_types(self) -> tuple[str, ...]:
        """Types with a ``guidance_encoder_<type>`` checkpoint: Champ's four in order, then others by name."""
        found = {
            path.name[len(GUIDANCE_ENCODER_PREFIX) : -len(path.suffix)]
            for path in self.champ.iterdir()
            if path.name.startswith(GUIDANCE_ENCODER_PREFIX) and path.suffix in WEIGHT_SUFFIXES and path.is_file()
        }
        return tuple(t for t in CHAMP_GUIDANCE_TYPES if t in found) + tuple(sorted(found - set(CHAMP_GUIDANCE_TYPES)))

    def has_encoder(self, guidance_type: str) -> bool:
        return guidance_type in self.encoder_types()


def guidance_types_for(weights: WeightsFolder, settings: GenerateSettings, folder: GuidanceFolder) -> tuple[str, ...]:
    """The model's guidance types, in summation order (see the module docstring); each must be in ``folder``."""
    base = settings.guidance_types if settings.guidance_types is not None else weights.encoder_types()
    types = tuple(base) + tuple(t for t in settings.extra_guidance_types if t not in base)
    if not types:
        raise Champ3dInputError(weights.champ, f"no {GUIDANCE_ENCODER_PREFIX}<type> checkpoint found")
    for name in base:
        find_weight_file(weights.champ, GUIDANCE_ENCODER_PREFIX + name)  # names the missing checkpoint
    for name in types:
        if name not in folder.types:
            raise Champ3dInputError(
                folder.path / name,
                f"the generator needs {name!r} guidance (encoder {GUIDANCE_ENCODER_PREFIX}{name}) but the guidance "
                f"folder has only {list(folder.types)}",
            )
    return types


def load_generator(
    weights: WeightsFolder,
    guidance_types: Sequence[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ChampPipeline:
    """A :class:`ChampPipeline` from ``weights`` with encoders for ``guidance_types``.

    Types without a ``guidance_encoder_<type>`` checkpoint get a new encoder whose output
    convolution is zero (:func:`add_zero_initialised_encoders`); at least one type must have
    a checkpoint. Unexpected checkpoint keys are reported with a warning.
    """
    loaded = [t for t in guidance_types if weights.has_encoder(t)]
    new = [t for t in guidance_types if t not in loaded]
    if not loaded:
        missing = weights.champ / f"{GUIDANCE_ENCODER_PREFIX}{guidance_types[0]}.pth"
        raise Champ3dInputError(missing, "checkpoint not found (at least one guidance type needs a trained encoder)")
    pipe = ChampPipeline.from_weights_dir(
        weights.champ,
        vae_dir=weights.vae,
        image_encoder_dir=weights.image_encoder,
        config=weights.model_config,
        scheduler_config=weights.scheduler_config,
        guidance_types=loaded,
        device=device,
        dtype=dtype,
    )
    if not pipe.load_report.complete:
        warnings.warn(f"{weights.champ}: checkpoints do not match the model exactly:\n{pipe.load_report.summary()}", stacklevel=2)
    add_zero_initialised_encoders(pipe.model, new)
    return pipe


def add_zero_initialised_encoders(model: ChampModel, guidance_types: Sequence[str]) -> None:
    """Append a new guidance encoder per type. A new :class:`GuidanceEncoder` has its
    ``conv_out`` zeroed (Champ's initialisation), so it outputs exactly zero and the model
    computes what it computed without it until the encoder is trained. The encoders take the
    model's device and dtype.
    """
    if not guidance_types:
        return
    param = next(model.parameters())
    spec = model.config.guidance_spec()
    for name in guidance_types:
        if name in model.guidance_encoders:
            raise ValueError(f"the model already has a {name!r} guidance encoder")
        model.guidance_encoders[name] = GuidanceEncoder(spec).to(param.device, param.dtype).eval()
    model.guidance_types = tuple(model.guidance_types) + tuple(guidance_types)


# ---------------------------------------------------------------------------------- generation


def generate_video(
    guidance: GuidanceFolder,
    reference_image: np.ndarray,
    weights_dir: str | Path,
    out_path: str | Path,
    *,
    fps: float | Fraction | str,
    config: Mapping[str, Any] | str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Animate ``reference_image`` (uint8 HxWx3 RGB) along ``guidance`` with Champ; write ``out_path``.

    ``weights_dir``: a weights folder (module docstring). ``fps``: the output frame rate (as
    :class:`champ3d.io.VideoWriter` takes it; pass the driving video's). ``config``:
    overrides of ``configs/generate/champ.yaml``, as a mapping or a YAML file (see
    :func:`load_settings`). Guidance frames are read window by window
    and the latents decoded a few frames at a time, each chunk written as it comes. Returns
    ``out_path``; an existing file is kept (and an error raised) unless ``overwrite``.
    """
    settings = load_settings(config)
    weights = WeightsFolder.resolve(weights_dir)
    types = guidance_types_for(weights, settings, guidance)
    width, height = settings.size(guidance)
    source = FolderGuidanceSource(guidance, types, size=(width, height))
    schedule = make_context_schedule(SCHEDULES[settings.schedule], settings.context_frames, settings.context_overlap)
    device = settings.torch_device()
    out_path = Path(out_path)
    # Entered first: an existing output is refused before any work, and a failure leaves nothing.
    with VideoWriter(out_path, fps=fps, overwrite=overwrite) as video:
        pipe = load_generator(weights, types, device=device, dtype=settings.torch_dtype(device))
        with tqdm(total=settings.steps, desc="champ denoise", unit="step", leave=False, disable=not progress) as bar:
            latents = pipe.generate_latents(
                reference_image,
                source,
                width=width,
                height=height,
                num_inference_steps=settings.steps,
                guidance_scale=settings.guidance_scale,
                context_schedule=schedule,
                context_batch_size=settings.context_batch_size,
                generator=torch.Generator("cpu").manual_seed(settings.seed),
                step_callback=lambda *_: bar.update(1),
            )
        chunks = pipe.decode_frames(latents, settings.decode_chunk_size)
        for _, frames in tqdm(chunks, desc="champ decode", unit="chunk", leave=False, disable=not progress):
            for frame in to_uint8_frames(frames):
                video.write(frame)
    return out_path


def to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """Decoded frames (n, 3, H, W) float in [0, 1] -> (n, H, W, 3) uint8 RGB, rounded to nearest."""
    return frames.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
