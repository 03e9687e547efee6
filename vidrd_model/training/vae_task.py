"""Temporal VAE decoder fine-tuning: encode each frame (frozen encoder), decode the clip with the decoder's
temporal convolutions (the only trainable parameters), and compare with the input.

Loss = l1_weight · |x̂ − x| + lpips_weight · LPIPS(x̂, x) (only with a VGG16 weights path)
     + temporal_weight · |(x̂_{t+1} − x̂_t) − (x_{t+1} − x_t)|   (flicker between frames costs)
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .parameter_groups import select_trainable
from .task_weights import TrainedModelWeights
from .unet_task import pixels_to_frames



class ClipDecoding(torch.nn.Module):
    """forward(z, num_frames) = the VAE's clip decoding; a module of its own so that DDP, which syncs gradients
    only through forward(), can wrap it."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.vae.decode(z, num_frames=num_frames).sample


class VAEDecoderTask(TrainedModelWeights):
    weights_label = "VAE"
    component = "vae"

    def __init__(self, components, config, device: torch.device, weight_dtype: torch.dtype = torch.float32):
        self.config = config
        self.device = device
        self.vae = components.vae.to(device)
        self.decoding = ClipDecoding(self.vae)
        self.trainable = select_trainable(self.vae, config.model.trainable_patterns)
        if config.precision.gradient_checkpointing:
            self.vae.enable_gradient_checkpointing()
        self.vae.train()
        self.vae.encoder.eval()  # frozen: no dropout/norm updates from training mode
        self.tokenizer = None     # captions are not used
        loss = config.vae_loss
        self.lpips = None
        if loss.lpips_vgg_path and loss.lpips_weight > 0:
            from .perceptual import LPIPS
            self.lpips = LPIPS(loss.lpips_vgg_path, loss.lpips_linear_path).to(device)

    @property
    def trained_module(self) -> torch.nn.Module:
        return self.vae

    @property
    def model(self) -> torch.nn.Module:
        return self.decoding

    def loss(self, batch: dict, generator: torch.Generator, model: torch.nn.Module) -> tuple[torch.Tensor, dict]:
        pixels = batch["pixel_values"].to(self.device, non_blocking=True)
        b, _, f = pixels.shape[:3]
        target = pixels_to_frames(pixels, torch.float32)  # (B*F, 3, H, W)
        with torch.no_grad():
            posterior = self.vae.encode(target).latent_dist
            z = posterior.sample(generator=generator) if self.config.vae_loss.sample_posterior else posterior.mode()
        recon = model(z, f).float()
        w = self.config.vae_loss
        logs = {"l1": F.l1_loss(recon, target)}
        total = w.l1_weight * logs["l1"]
        if self.lpips is not None:
            logs["lpips"] = self.lpips(recon, target)
            total = total + w.lpips_weight * logs["lpips"]
        if w.temporal_weight and f > 1:
            r = recon.reshape(b, f, *recon.shape[1:])
            t = target.reshape(b, f, *target.shape[1:])
            logs["temporal"] = F.l1_loss(r[:, 1:] - r[:, :-1], t[:, 1:] - t[:, :-1])
            total = total + w.temporal_weight * logs["temporal"]
        return total, {k: v.item() for k, v in logs.items()}

