"""The denoising objective: noise (with optional per-video offset), targets, min-SNR weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_noise(latents: torch.Tensor, generator: torch.Generator, noise_offset: float = 0.0) -> torch.Tensor:
    """Gaussian noise like `latents` (B, C, F, H, W). Offset noise adds one value per video and channel, shared by
    every frame and pixel, so that the model learns to shift a whole clip's brightness coherently."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if noise_offset:
        b, c = latents.shape[:2]
        offset = torch.randn((b, c, 1, 1, 1), generator=generator, device=latents.device, dtype=latents.dtype)
        noise = noise + noise_offset * offset
    return noise


def snr(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    a = alphas_cumprod.to(timesteps.device)[timesteps].float()
    return a / (1 - a)


def diffusion_target(scheduler, latents, noise, timesteps) -> torch.Tensor:
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported prediction_type {kind!r}: use 'epsilon' or 'v_prediction'")


def denoising_loss(pred, target, timesteps, scheduler, snr_gamma: float | None) -> torch.Tensor:
    """MSE, or min-SNR-γ weighted MSE: weight min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR+1) for v."""
    if snr_gamma is None:
        return F.mse_loss(pred.float(), target.float())
    s = snr(scheduler.alphas_cumprod, timesteps)
    clipped = torch.clamp(s, max=snr_gamma)
    weight = clipped / (s + 1) if scheduler.config.prediction_type == "v_prediction" else clipped / s
    per_video = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=tuple(range(1, pred.ndim)))
    return (per_video * weight).mean()
