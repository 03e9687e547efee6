"""What one VidRD UNet training step computes: clips -> VAE latents -> noised -> denoised -> loss.

The VAE and the text encoder are frozen and run without gradients; only the UNet's selected groups train.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMScheduler

from .diffusion_losses import denoising_loss, diffusion_target, sample_noise
from .parameter_groups import select_trainable
from .task_weights import TrainedModelWeights



def pixels_to_frames(pixel_values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (B, 3, F, H, W) -> float in [-1, 1], frames stacked in the batch: (B*F, 3, H, W)."""
    b, c, f, h, w = pixel_values.shape
    frames = pixel_values.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    return frames.to(dtype) / 127.5 - 1.0


class UNetDiffusionTask(TrainedModelWeights):
    weights_label = "UNet"
    component = "unet"

    def __init__(self, components, config, device: torch.device, weight_dtype: torch.dtype = torch.float32):
        self.config = config
        self.device = device
        self.unet = components.unet.to(device)
        self.vae = components.vae.to(device, dtype=weight_dtype).eval().requires_grad_(False)
        self.text_encoder = components.text_encoder.to(device, dtype=weight_dtype).eval().requires_grad_(False)
        self.tokenizer = components.tokenizer
        self.weight_dtype = weight_dtype
        # Training uses DDPM's forward process with the model's own schedule (SD 2.1-base: 1000 steps,
        # scaled_linear 0.00085 -> 0.012); only the prediction type may be changed (v-prediction).
        self.scheduler = DDPMScheduler.from_config(components.scheduler.config,
                                                   prediction_type=config.diffusion.prediction_type)
        self.scaling_factor = self.vae.config.scaling_factor
        self.trainable = select_trainable(self.unet, config.model.trainable_patterns)
        if config.precision.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.unet.train()
        ids = self.tokenizer([""], padding="max_length", truncation=True, return_tensors="pt",
                             max_length=config.data.max_caption_length or self.tokenizer.model_max_length).input_ids
        self.empty_ids = ids.to(device)  # the unconditional caption of classifier-free guidance

    @property
    def trained_module(self) -> torch.nn.Module:
        return self.unet

    @property
    def model(self) -> torch.nn.Module:
        return self.unet

    @torch.no_grad()
    def encode_latents(self, pixel_values: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, f = pixel_values.shape[:3]
        frames = pixels_to_frames(pixel_values.to(self.device, non_blocking=True), self.weight_dtype)
        posterior = self.vae.encode(frames).latent_dist
        latents = posterior.sample(generator=generator) * self.scaling_factor
        return latents.reshape(b, f, *latents.shape[1:]).permute(0, 2, 1, 3, 4).float()  # B, C, F, h, w

    @torch.no_grad()
    def encode_text(self, input_ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        input_ids = input_ids.to(self.device)
        p = self.config.diffusion.text_dropout
        if p > 0:
            drop = torch.rand(input_ids.shape[0], generator=generator, device=self.device) < p
            input_ids = torch.where(drop[:, None], self.empty_ids.expand_as(input_ids), input_ids)
        return self.text_encoder(input_ids)[0]

    def loss(self, batch: dict, generator: torch.Generator, model: torch.nn.Module) -> tuple[torch.Tensor, dict]:
        """`model` is the UNet itself or its DDP wrapper (which syncs gradients)."""
        latents = self.encode_latents(batch["pixel_values"], generator)
        text = self.encode_text(batch["input_ids"], generator)
        d = self.config.diffusion
        noise = sample_noise(latents, generator, d.noise_offset)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (latents.shape[0],),
                          generator=generator, device=self.device)
        noisy = self.scheduler.add_noise(latents, noise, t)
        target = diffusion_target(self.scheduler, latents, noise, t)
        pred = model(noisy, t, encoder_hidden_states=text).sample
        return denoising_loss(pred, target, t, self.scheduler, d.snr_gamma), {}
