"""Champ's training objective: v-prediction on a zero-terminal-SNR schedule with Min-SNR weighting.

* Schedule: DDIM's betas from ``noise`` settings (Champ forces ``scaled_linear``, while its
  inference uses ``linear``), rescaled to zero terminal SNR; the network predicts
  ``v = sqrt(a_t) * noise - sqrt(1 - a_t) * x0`` (``a_t``: cumulative alpha), which is
  what :class:`champ3d.pipelines.ChampPipeline` expects.
* Noise: ``noise = randn_like(latents) + noise_offset * randn(B, C, 1, 1, 1)``; timesteps
  uniform in ``[0, num_train_timesteps)``, one per sample.
* Loss: per-sample MSE between prediction and v; with ``snr_gamma`` each sample is weighted
  ``min(snr + 1, gamma) / (snr + 1)`` with ``snr = a_t / (1 - a_t)`` (Min-SNR for
  v-prediction, as Champ); then the mean over samples.
"""
from __future__ import annotations

from typing import Optional

import torch
from diffusers import DDIMScheduler

from champ3d.train.config import NoiseConfig


class DiffusionObjective:
    def __init__(self, config: NoiseConfig):
        self.config = config
        self.scheduler = DDIMScheduler(
            num_train_timesteps=config.num_train_timesteps,
            beta_start=config.beta_start,
            beta_end=config.beta_end,
            beta_schedule=config.beta_schedule,
            clip_sample=False,
            rescale_betas_zero_snr=True,
            timestep_spacing="trailing",
            prediction_type="v_prediction",
        )

    def noisy_latents(
        self, latents: torch.Tensor, generator: Optional[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``latents`` (B, C, F, h, w) -> (noisy latents, timesteps (B,), target v)."""
        batch, channels = latents.shape[:2]
        options = {"generator": generator, "device": latents.device, "dtype": latents.dtype}
        noise = torch.randn(latents.shape, **options)
        noise = noise + self.config.noise_offset * torch.randn((batch, channels, 1, 1, 1), **options)
        timesteps = torch.randint(
            0, self.config.num_train_timesteps, (batch,), generator=generator, device=latents.device
        )
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        return noisy, timesteps, self.scheduler.get_velocity(latents, noise, timesteps)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        per_sample = (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)
        if self.config.snr_gamma is None:
            return per_sample.mean()
        snr = self.snr(timesteps) + 1.0  # v-prediction
        weights = snr.clamp(max=self.config.snr_gamma) / snr
        return (per_sample * weights).mean()

    def snr(self, timesteps: torch.Tensor) -> torch.Tensor:
        alphas = self.scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
        return alphas / (1.0 - alphas)
