"""Champ's long-video generation pipeline (``MultiGuidance2LongVideoPipeline``), window by window.

Per call:

1. CLIP context from the reference image (:mod:`champ3d.models.clip`); the unconditional
   context is a zero token.
2. Reference latents: the reference image resized to (width, height) with PIL Lanczos, mapped
   to [-1, 1], VAE ``latent_dist.mean * 0.18215``. The reference UNet runs once, at t = 0, and
   its bank is read by every denoising call.
3. DDIM (Champ: linear betas, zero-SNR rescale, trailing spacing, v-prediction, eta 0). At each
   step every context window is denoised (batch [uncond ; cond] under classifier-free
   guidance); a frame's prediction is the plain average over the windows holding it; then
   ``v = u + s * (c - u)`` and one DDIM step on the whole latent video.
4. The VAE decodes ``latents / 0.18215`` a few frames at a time; frames map to ``x/2 + 0.5``
   clamped to [0, 1].

Differences from the official code that do not change its results: guidance frames are pulled
from a source window by window (the official code holds the whole video), the reference UNet
runs only on the conditional half (the unconditional half's bank is never read), latents and
the window accumulator stay in fp32 when the networks run in fp16.

Memory: the only whole-video tensors are the latents and the per-step accumulator (together
3 x 4 x F x h x w floats) and, with ``cache_guidance_features``, the encoded guidance (C0 x F x
h x w in the model dtype, kept on the CPU when the model is on a GPU). Everything else is per
window, so device memory does not grow with the frame count.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.models.attention import OFFICIAL_BANK_DTYPE
from champ3d.models.champ_model import ChampModel
from champ3d.models.clip import ClipImageConditioner, check_reference_image
from champ3d.models.config import ChampModelConfig
from champ3d.models.loading import LoadReport, load_champ_model
from champ3d.pipelines.context import ContextSchedule, SlidingSchedule
from champ3d.pipelines.guidance_source import GuidanceSource

# Champ multiplies VAE latents by this hard-coded constant (not vae.config.scaling_factor).
LATENT_SCALE = 0.18215
VAE_SCALE_FACTOR = 8

# Champ's configs/inference/inference.yaml noise scheduler, with the settings inference.py adds.
CHAMP_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "steps_offset": 1,
    "clip_sample": False,
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "prediction_type": "v_prediction",
}

StepCallback = Callable[[int, int, torch.Tensor], None]


def load_vae(vae_dir: str | Path, dtype: torch.dtype = torch.float32) -> AutoencoderKL:
    """A local diffusers ``AutoencoderKL`` folder (Champ: sd-vae-ft-mse) in ``dtype``, frozen, in eval mode."""
    vae_dir = Path(vae_dir)
    if not (vae_dir / "config.json").is_file():
        raise Champ3dInputError(vae_dir / "config.json", "VAE config not found")
    try:
        vae = AutoencoderKL.from_pretrained(str(vae_dir), local_files_only=True, torch_dtype=dtype)
    except (OSError, ValueError) as exc:
        raise Champ3dInputError(vae_dir, f"cannot load the VAE ({exc})") from exc
    return vae.requires_grad_(False).eval()


def champ_scheduler(config: Mapping | str | Path | None = None) -> DDIMScheduler:
    """A DDIM scheduler from a config mapping or JSON file; Champ's inference settings when None."""
    if isinstance(config, (str, Path)):
        path = Path(config)
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise Champ3dInputError(path, f"not a readable scheduler config ({exc})") from exc
    return DDIMScheduler.from_config(dict(CHAMP_SCHEDULER_CONFIG if config is None else config))


@dataclass
class ChampPipelineOutput:
    """``video`` (1, 3, F, H, W) float32 in [0, 1] on the CPU; ``latents`` (1, 4, F, H/8, W/8) final latents."""

    video: torch.Tensor
    latents: torch.Tensor


class ChampPipeline:
    """Long-video Champ generation.

    ``model`` holds the networks (its ``bank_dtype`` decides the reference-bank rounding),
    ``vae`` a diffusers ``AutoencoderKL``, ``clip`` the CLIP conditioning, ``scheduler`` a
    diffusers ``DDIMScheduler`` (see :func:`champ_scheduler`). All run on the model's device
    and dtype.
    """

    def __init__(
        self,
        model: ChampModel,
        vae: AutoencoderKL,
        clip: ClipImageConditioner,
        scheduler: DDIMScheduler,
        load_report: Optional[LoadReport] = None,
    ):
        self.model = model
        self.vae = vae
        self.clip = clip
        self.scheduler = scheduler
        self.load_report = load_report

    @classmethod
    def from_weights_dir(
        cls,
        weights_dir: str | Path,
        *,
        vae_dir: str | Path,
        image_encoder_dir: str | Path,
        config: Optional[ChampModelConfig] = None,
        scheduler_config: Mapping | str | Path | None = None,
        guidance_types: Optional[Sequence[str]] = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        bank_dtype: Optional[torch.dtype] = OFFICIAL_BANK_DTYPE,
    ) -> "ChampPipeline":
        """Load everything from local folders; nothing is downloaded.

        ``weights_dir`` is Champ's ``pretrained_models/champ`` layout (``.pth`` or
        ``.safetensors``); ``config`` defaults to the released SD1.5-sized configuration;
        ``vae_dir`` is a diffusers ``AutoencoderKL`` folder (Champ: sd-vae-ft-mse) and
        ``image_encoder_dir`` a ``CLIPVisionModelWithProjection`` folder. The key-coverage
        report of the Champ checkpoints is kept in ``load_report``.
        """
        config = config or ChampModelConfig.sd15()
        model, report = load_champ_model(weights_dir, config, guidance_types, bank_dtype=bank_dtype, device=device, dtype=dtype)
        vae = load_vae(vae_dir, dtype)
        clip = ClipImageConditioner.from_dir(image_encoder_dir).to(device=device, dtype=dtype)
        return cls(model, vae.to(device), clip, champ_scheduler(scheduler_config), load_report=report)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def __call__(
        self, ref_image: np.ndarray, guidance: GuidanceSource, *, decode_chunk_size: int = 4, **generation
    ) -> ChampPipelineOutput:
        """Generate a video of ``len(guidance)`` frames: :meth:`generate_latents` (which takes
        every keyword in ``generation``) then :meth:`decode_frames`.

        For long videos, call those two directly and write the decoded frames as they come
        instead of holding the whole float video.
        """
        final = self.generate_latents(ref_image, guidance, **generation)
        frames = [chunk for _, chunk in self.decode_frames(final, decode_chunk_size)]
        video = torch.cat(frames).permute(1, 0, 2, 3).unsqueeze(0)
        return ChampPipelineOutput(video=video, latents=final)

    # ------------------------------------------------------------------ conditioning

    @torch.no_grad()
    def clip_context(self, ref_image: np.ndarray) -> torch.Tensor:
        """The CLIP context token of the reference image: (1, 1, D) in the model dtype."""
        return self.clip(self.clip.pixel_values(ref_image)).to(self.dtype)

    @torch.no_grad()
    def reference_latents(self, ref_image: np.ndarray, width: int, height: int) -> torch.Tensor:
        """VAE mean latents x 0.18215 of the reference squashed to (width, height): (1, 4, H/8, W/8)."""
        image = np.array(Image.fromarray(check_reference_image(ref_image)).resize((width, height), Image.LANCZOS))
        pixels = torch.from_numpy(image).float().div(255.0).permute(2, 0, 1).unsqueeze(0)
        pixels = (2.0 * pixels - 1.0).to(self.device, self.vae.dtype)
        return (self.vae.encode(pixels).latent_dist.mean * LATENT_SCALE).to(self.dtype)

    # ------------------------------------------------------------------ denoising

    @torch.no_grad()
    def generate_latents(
        self,
        ref_image: np.ndarray,
        guidance: GuidanceSource,
        *,
        width: int = 512,
        height: int = 512,
        num_inference_steps: int = 20,
        guidance_scale: float = 3.5,
        context_schedule: Optional[ContextSchedule] = None,
        context_batch_size: int = 1,
        eta: float = 0.0,
        generator: Optional[torch.Generator] = None,
        latents: Optional[torch.Tensor] = None,
        cache_guidance_features: bool = True,
        step_callback: Optional[StepCallback] = None,
    ) -> torch.Tensor:
        """Denoise and return the final latents (1, 4, F, H/8, W/8), float32.

        ``ref_image``: uint8 HxWx3 RGB, any size. ``guidance``: a guidance source whose frames
        are (height, width). ``context_schedule`` defaults to :class:`SlidingSchedule` (24
        frames, overlap 4); pass ``UniformSchedule()`` for the official wrap-around windows.
        ``context_batch_size`` windows go through the UNet together. ``eta`` is DDIM's (Champ:
        0). ``latents`` are the initial noise (1, 4, F, H/8, W/8); otherwise it is drawn with
        ``generator``, which also draws DDIM's noise when ``eta > 0``.
        ``cache_guidance_features`` encodes every guidance frame once (kept on the CPU for a
        GPU model); without it each window's guidance is pulled and encoded again at every
        step. ``step_callback(i, t, latents)`` runs after each DDIM step.
        """
        if width % VAE_SCALE_FACTOR or height % VAE_SCALE_FACTOR:
            raise Champ3dInputError("size", f"width and height must be multiples of {VAE_SCALE_FACTOR}: {width}x{height}")
        if context_batch_size < 1:
            raise Champ3dInputError("context_batch_size", f"must be >= 1, got {context_batch_size}")
        num_frames = len(guidance)
        if num_frames < 1:
            raise Champ3dInputError("guidance", "no guidance frames")
        windows = (context_schedule or SlidingSchedule())(num_frames)
        batches = [windows[i : i + context_batch_size] for i in range(0, len(windows), context_batch_size)]
        chunk = max(len(w) for w in windows)
        motion = self.model.config.motion_spec()
        if motion.position_encoding and chunk > motion.position_encoding_max_len:
            max_len = motion.position_encoding_max_len
            raise Champ3dInputError("context_frames", f"windows of {chunk} frames exceed the motion modules' {max_len}")
        device, dtype = self.device, self.dtype
        do_cfg = guidance_scale > 1.0
        shape = (1, 4, num_frames, height // VAE_SCALE_FACTOR, width // VAE_SCALE_FACTOR)
        if latents is None:
            noise_device = generator.device if generator is not None else device
            latents = torch.randn(shape, generator=generator, device=noise_device, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise Champ3dInputError("latents", f"expected shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device, torch.float32) * self.scheduler.init_noise_sigma

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        clip_context = self.clip_context(ref_image)
        bank = self.model.reference_bank(self.reference_latents(ref_image, width, height), clip_context)

        features = _WindowGuidance(self.model, guidance, (height, width), chunk, cache_guidance_features)

        for step, t in enumerate(self.scheduler.timesteps):
            branches = 2 if do_cfg else 1
            accumulated = torch.zeros((branches, *shape[1:]), device=device, dtype=torch.float32)
            counts = torch.zeros(num_frames, device=device, dtype=torch.float32)
            for batch in batches:
                if len({len(w) for w in batch}) != 1:
                    raise ValueError("windows batched together must have the same length")
                k = len(batch)
                sample = torch.cat([latents[:, :, w] for w in batch])
                guidance_fea = torch.cat([features(w) for w in batch])
                context = clip_context.expand(k, -1, -1)
                if do_cfg:
                    sample = torch.cat([sample, sample])
                    guidance_fea = torch.cat([guidance_fea, guidance_fea])
                    context = torch.cat([torch.zeros_like(context), context])
                reader = self.model.reader(bank, num_frames=len(batch[0]), num_uncond=k if do_cfg else 0)
                pred = self.model.denoising_unet(sample.to(dtype), t, context, guidance_fea, reader).float()
                for j, window in enumerate(batch):
                    index = torch.as_tensor(window, device=device)
                    accumulated.index_add_(2, index, pred[j::k])
                    counts.index_add_(0, index, torch.ones(len(window), device=device))
            noise_pred = accumulated / counts.view(1, 1, -1, 1, 1)
            if do_cfg:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + guidance_scale * (cond - uncond)
            latents = self.scheduler.step(noise_pred, t, latents, eta=eta, generator=generator).prev_sample
            if step_callback is not None:
                step_callback(step, int(t), latents)
        return latents

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def decode_frames(self, latents: torch.Tensor, chunk_size: int = 4) -> Iterator[tuple[int, torch.Tensor]]:
        """Decode (1, 4, F, h, w) latents ``chunk_size`` frames at a time.

        Yields ``(first_frame_index, frames)`` with frames (n, 3, H, W) float32 in [0, 1] on the CPU.
        """
        if chunk_size < 1:
            raise Champ3dInputError("decode_chunk_size", f"must be >= 1, got {chunk_size}")
        scaled = latents * (1 / LATENT_SCALE)
        for start in range(0, scaled.shape[2], chunk_size):
            chunk = scaled[0, :, start : start + chunk_size].transpose(0, 1).to(self.device, self.vae.dtype)
            frames = self.vae.decode(chunk).sample.float()
            yield start, (frames / 2 + 0.5).clamp(0, 1).cpu()


class _WindowGuidance:
    """Summed guidance features (1, C0, n, h, w) of a window, from a guidance source."""

    def __init__(self, model: ChampModel, source: GuidanceSource, size: tuple[int, int], chunk: int, cache: bool):
        self.model = model
        self.source = source
        self.size = size
        self.store: Optional[torch.Tensor] = None
        if cache:
            self.store = self._encode_all(chunk)

    def __call__(self, window: list[int]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        if self.store is not None:
            return self.store[:, :, window].to(device)
        return self._encode(window)

    def _encode(self, frame_indices: Sequence[int]) -> torch.Tensor:
        param = next(self.model.parameters())
        frames = self.source(list(frame_indices))
        if set(frames) != set(self.model.guidance_types):
            raise Champ3dInputError("guidance", f"types {sorted(frames)} differ from the model's {list(self.model.guidance_types)}")
        conditions = {}
        for name, tensor in frames.items():
            if tuple(tensor.shape[-2:]) != self.size or tensor.shape[:2] != (3, len(frame_indices)):
                expected = (3, len(frame_indices), *self.size)
                raise Champ3dInputError(f"guidance.{name}", f"expected frames {expected}, got {tuple(tensor.shape)}")
            conditions[name] = tensor.unsqueeze(0).to(param.device, param.dtype)
        return self.model.encode_guidance(conditions)

    def _encode_all(self, chunk: int) -> torch.Tensor:
        num_frames = len(self.source)
        device = next(self.model.parameters()).device
        store_device = torch.device("cpu") if device.type != "cpu" else device
        store = None
        for start in range(0, num_frames, chunk):
            indices = list(range(start, min(num_frames, start + chunk)))
            fea = self._encode(indices)
            if store is None:
                store = torch.empty((1, fea.shape[1], num_frames, *fea.shape[3:]), dtype=fea.dtype, device=store_device)
            store[:, :, start : start + len(indices)] = fea.to(store_device)
        return store
