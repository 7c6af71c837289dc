"""Champ training with accelerate: one trainer for both stages.

One micro-step (Champ's ``train_s1.py``/``train_s2.py``):

1. VAE latents of the target frames and of the reference frame (``latent_dist.sample()``
   x 0.18215), the CLIP context of the reference (:class:`~champ3d.models.clip.ClipImageConditioner`,
   the same preprocessing as generation).
2. Noise, timesteps and v target (:class:`~champ3d.train.objective.DiffusionObjective`).
3. Condition drop, one draw per micro-batch with probability ``uncond_ratio``: the CLIP
   context becomes a zero token and the reference UNet is skipped (plain self-attention);
   the guidance is kept. This is exactly the unconditional half the pipeline computes
   under classifier-free guidance. (Champ's training instead feeds zero *pixels* through
   CLIP, a mismatch with its own inference that is not copied here.)
4. :class:`~champ3d.models.ChampModel` forward (reference UNet writes the bank, denoising
   UNet reads it), Min-SNR-weighted v loss, backward; on the last micro-step of an
   accumulation, gradient clipping, AdamW step.

Randomness: the noise, timestep, latent-sampling and drop draws of micro-batch ``k`` on
process ``r`` come from a generator seeded with ``(seed, k, r)``, and the samples from
:class:`~champ3d.train.dataset.ChampTrainingSamples` are a function of ``(seed, n)``. A run
resumed from ``checkpoint-<step>`` therefore sees exactly the batches and draws of the
uninterrupted run. The learning rate is a function of the step (linear warm-up over
``lr_warmup_steps`` optimiser steps starting from 0, then constant, like diffusers'
``constant_with_warmup``), so no scheduler state is saved either.

Multi-GPU and mixed precision are accelerate's (``accelerate launch -m champ3d.cli train
...``); the trainable networks stay in fp32 under autocast, the frozen VAE and CLIP are cast
to the mixed-precision dtype.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from torch.utils.data import DataLoader
from tqdm import tqdm

from champ3d.errors import Champ3dInputError
from champ3d.models.unet_3d import fold_frames, unfold_frames
from champ3d.pipelines.champ_pipeline import LATENT_SCALE, load_vae
from champ3d.train import checkpoints
from champ3d.train.clips import find_clips
from champ3d.train.config import TrainConfig, check_train_config, config_yaml
from champ3d.train.dataset import ChampTrainingSamples, SampleSpec, StepSampler
from champ3d.train.networks import build_stage_model, enable_gradient_checkpointing, load_clip
from champ3d.train.objective import DiffusionObjective

logger = logging.getLogger(__name__)

LOSS_LOG = "losses.jsonl"
_WEIGHT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class ChampTrainer:
    """Everything one training run needs; :meth:`train` runs it, :meth:`train_step` is one micro-step."""

    def __init__(self, config: TrainConfig):
        check_train_config(config, "config")
        self.config = config
        data, solver = config.data, config.solver
        self.accelerator = Accelerator(
            mixed_precision=solver.mixed_precision,
            gradient_accumulation_steps=solver.gradient_accumulation_steps,
            # Stage 1: the condition drop skips the (trained) reference UNet, and the guidance
            # encoders hold trained parameters their forward never uses.
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.stage == 1)],
        )
        clips = find_clips(data.clips, data.guidance_types)
        torch.manual_seed(config.seed)
        model, report = build_stage_model(config)
        if report.summary():
            logger.warning("starting weights:\n%s", report.summary())
        if solver.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        device = self.accelerator.device
        weight_dtype = _WEIGHT_DTYPES.get(solver.mixed_precision, torch.float32)
        self.vae = load_vae(config.model.vae_dir, weight_dtype).to(device)
        self.clip = load_clip(config.model.image_encoder_dir).to(device, weight_dtype)
        self.objective = DiffusionObjective(config.noise)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            self.trainable,
            lr=solver.learning_rate,
            betas=(solver.adam_beta1, solver.adam_beta2),
            weight_decay=solver.adam_weight_decay,
            eps=solver.adam_epsilon,
        )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        spec = SampleSpec(
            image_size=tuple(data.image_size),
            crop_scale=tuple(data.crop_scale),
            num_frames=1 if config.stage == 1 else data.num_frames,
            sample_margin=data.sample_margin,
            frame_stride=data.frame_stride,
        )
        self.dataset = ChampTrainingSamples(clips, spec, config.seed, self.clip.pixel_values)
        self.output_dir = Path(config.output_dir)

    @property
    def champ_model(self):
        """The :class:`~champ3d.models.ChampModel` being trained (unwrapped from DDP)."""
        return self.accelerator.unwrap_model(self.model)

    # ------------------------------------------------------------------ one step

    def generator(self, micro_batch: int) -> torch.Generator:
        """The generator of micro-batch ``micro_batch`` on this process."""
        seed = np.random.SeedSequence([self.config.seed, micro_batch, self.accelerator.process_index]).generate_state(1)[0]
        return torch.Generator(device=self.accelerator.device).manual_seed(int(seed))

    def learning_rate(self, step: int) -> float:
        """Learning rate of the optimiser step that follows ``step`` completed steps."""
        warmup = self.config.solver.lr_warmup_steps
        return self.config.solver.learning_rate * (min(1.0, step / warmup) if warmup else 1.0)

    def batch_loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """The training loss of a collated batch (see the module docstring)."""
        device = self.accelerator.device
        with torch.no_grad():
            pixels = batch["pixels"].to(device)
            num_frames = pixels.shape[2]
            latents = unfold_frames(self._encode(fold_frames(pixels), generator), num_frames)
            ref_latents = self._encode(batch["ref_pixels"].to(device), generator)
            clip_context = self.clip(batch["clip_pixels"].to(device)).float()
            noisy, timesteps, target = self.objective.noisy_latents(latents, generator)
            uncond = bool(torch.rand((), generator=generator, device=device) < self.config.noise.uncond_ratio)
            if uncond:
                clip_context = torch.zeros_like(clip_context)
            guidance = {name: frames.to(device) for name, frames in batch["guidance"].items()}
        prediction = self.model(noisy, timesteps, ref_latents, clip_context, guidance, uncond_fwd=uncond).model_pred
        return self.objective.loss(prediction, target, timesteps)

    def train_step(self, batch: dict, generator: torch.Generator, step: int = 0) -> tuple[float, bool]:
        """One micro-step; returns (loss averaged over processes, whether the optimiser stepped).

        ``step`` is the number of optimiser steps completed (it sets the learning rate).
        """
        with self.accelerator.accumulate(self.model):
            loss = self.batch_loss(batch, generator)
            self.accelerator.backward(loss)
            synced = self.accelerator.sync_gradients
            if synced:
                self.accelerator.clip_grad_norm_(self.trainable, self.config.solver.max_grad_norm)
                for group in self.optimizer.param_groups:
                    group["lr"] = self.learning_rate(step)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return self.accelerator.gather(loss.detach()[None]).mean().item(), synced

    def _encode(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """VAE latents x 0.18215 of (N, 3, H, W) pixels in [-1, 1], sampled from the latent distribution."""
        posterior = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist
        return (posterior.sample(generator=generator) * LATENT_SCALE).float()

    # ------------------------------------------------------------------ the run

    def train(self, resume: Optional[Path] = None) -> list[tuple[int, float]]:
        """Train up to ``solver.max_train_steps`` optimiser steps; returns ``(step, loss)`` of the steps run.

        ``resume``: a ``checkpoint-<step>`` folder, or a run's output folder (its newest checkpoint).
        """
        config, accelerator = self.config, self.accelerator
        step = self.load_checkpoint(resume) if resume is not None else 0
        accumulation = config.solver.gradient_accumulation_steps
        micro_batch = step * accumulation
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(config_yaml(config))
        sampler = StepSampler(config.solver.batch_size, micro_batch, accelerator.process_index, accelerator.num_processes)
        loader = DataLoader(
            self.dataset,
            batch_size=config.solver.batch_size,
            sampler=sampler,
            num_workers=config.data.num_workers,
            pin_memory=accelerator.device.type == "cuda",
        )
        self.model.train()
        history: list[tuple[int, float]] = []
        running = 0.0
        progress = tqdm(total=config.solver.max_train_steps, initial=step, desc=f"stage {config.stage}",
                        disable=not accelerator.is_main_process)
        batches = iter(loader)
        while step < config.solver.max_train_steps:
            loss, synced = self.train_step(next(batches), self.generator(micro_batch), step)
            micro_batch += 1
            running += loss / accumulation
            if not synced:
                continue
            step += 1
            history.append((step, running))
            self._log(step, running)
            progress.update(1)
            progress.set_postfix(loss=f"{running:.4f}")
            running = 0.0
            last = step == config.solver.max_train_steps
            if last or step % config.checkpoint.checkpointing_steps == 0:
                self.save_checkpoint(step)
            if last or step % config.checkpoint.save_weights_steps == 0:
                self.save_weights(step)
        progress.close()
        return history

    def _log(self, step: int, loss: float) -> None:
        if self.accelerator.is_main_process:
            with open(self.output_dir / LOSS_LOG, "a", encoding="utf-8") as log:
                log.write(json.dumps({"step": step, "loss": loss, "lr": self.learning_rate(step - 1)}) + "\n")

    # ------------------------------------------------------------------ saving and resuming

    def save_checkpoint(self, step: int) -> Path:
        """Accelerate state plus the step, as ``checkpoint-<step>`` (written whole, then renamed)."""
        accelerator = self.accelerator
        final = checkpoints.checkpoint_dir(self.output_dir, step)
        temp = final.with_name(f".{final.name}.partial")
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if temp.exists():
                shutil.rmtree(temp)  # left over from an interrupted save
        accelerator.wait_for_everyone()
        accelerator.save_state(str(temp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            checkpoints.write_training_state(temp, step, self.config.stage)
            checkpoints.commit_dir(temp, final)
            checkpoints.prune_checkpoints(self.output_dir, self.config.checkpoint.checkpoints_total_limit)
        accelerator.wait_for_everyone()
        return final

    def save_weights(self, step: int) -> Path:
        """The weights folder ``weights-<step>`` (see :mod:`champ3d.train.checkpoints`)."""
        folder = checkpoints.weights_dir(self.output_dir, step)
        if self.accelerator.is_main_process:
            model = self.config.model
            checkpoints.save_weights_folder(
                self.champ_model, folder, self.config.checkpoint.weights_format, Path(model.vae_dir), Path(model.image_encoder_dir)
            )
        self.accelerator.wait_for_everyone()
        return folder

    def load_checkpoint(self, path: Path) -> int:
        """Restore the state saved by :meth:`save_checkpoint`; returns its step."""
        folder = checkpoints.resolve_checkpoint(Path(path))
        state = checkpoints.read_training_state(folder)
        if state["stage"] != self.config.stage:
            raise Champ3dInputError(folder, f"checkpoint of stage {state['stage']}, the config trains stage {self.config.stage}")
        self.accelerator.load_state(str(folder))
        return state["step"]
