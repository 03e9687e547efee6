"""The iterative long-video sampler: an explicit loop over clips and steps.

Clip 0 starts from Gaussian noise. Clip k ≥ 1 starts from clip k−1's initial noise with its frames reversed
(FNR), its non-overlapped frames mixed with fresh noise (PNS), and during its first steps its overlapped frames
are overwritten by clip k−1's latents of the same step (DSG). Each clip's final latents are yielded as soon as
they are ready, and only clip k−1's guides are kept, so memory does not grow with the number of clips.

The UNet is any callable `unet(sample (B,C,F,H,W), timestep, encoder_hidden_states=...)` returning an object
with `.sample` (diffusers' convention) or a tensor; the scheduler is any diffusers scheduler.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import torch

from .guidance import apply_staged_guidance, guided_frames, last_guided_step
from .noise import align_to_next_clip, next_clip_noise


@dataclass(frozen=True)
class LongVideoSettings:
    """Every setting of the iterative sampler. Defaults are the released VidRD's."""

    num_clips: int = 1
    num_frames: int = 8  # N, frames per clip
    overlap_frames: int = 4  # M, frames clip k shares with clip k−1
    noise_recycle_alpha: float = 4.0  # α of PNS
    denoise_guidance_gamma: float = 0.4  # γ of DSG
    num_inference_steps: int = 50  # T
    guidance_scale: float = 10.0  # classifier-free guidance; <= 1 runs the conditional branch only
    eta: float = 0.0  # DDIM η (passed to schedulers whose step() takes it)
    frame_noise_reversion: bool = True  # FNR
    past_dependent_noise: bool = True  # PNS
    staged_guidance: bool = True  # DSG

    def __post_init__(self) -> None:
        if self.num_clips < 1:
            raise ValueError(f"num_clips must be >= 1; got {self.num_clips}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1; got {self.num_frames}")
        if not 0 <= self.overlap_frames < self.num_frames:
            raise ValueError(
                f"overlap_frames must be in [0, num_frames) = [0, {self.num_frames}); got {self.overlap_frames}"
            )
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1; got {self.num_inference_steps}")
        if self.noise_recycle_alpha < 0 or self.denoise_guidance_gamma < 0:
            raise ValueError("noise_recycle_alpha and denoise_guidance_gamma must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def uses_guidance(self) -> bool:
        return self.staged_guidance and self.overlap_frames > 0 and self.denoise_guidance_gamma > 0


@dataclass
class ClipLatents:
    """One finished clip: its index, its final latents (B,C,N,h,w) and the unit noise it started from."""

    index: int
    latents: torch.Tensor
    initial_noise: torch.Tensor


# ---------------------------------------------------------------------------------------------- one step


def classifier_free_guidance(noise_uncond: torch.Tensor, noise_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """ε_uncond + s·(ε_cond − ε_uncond)."""
    return noise_uncond + scale * (noise_cond - noise_uncond)


def text_conditions(
    prompt_embeds: torch.Tensor, negative_prompt_embeds: Optional[torch.Tensor], guidance_scale: float
) -> torch.Tensor:
    """The encoder hidden states of one UNet call: [negative; positive] (unconditional first, as released)
    when classifier-free guidance is on, else the positive ones alone."""
    if guidance_scale <= 1.0:
        return prompt_embeds
    if negative_prompt_embeds is None:
        raise ValueError("guidance_scale > 1 needs negative_prompt_embeds (encode the negative or empty prompt)")
    if negative_prompt_embeds.shape != prompt_embeds.shape:
        raise ValueError(
            f"negative_prompt_embeds {tuple(negative_prompt_embeds.shape)} must match prompt_embeds "
            f"{tuple(prompt_embeds.shape)}"
        )
    return torch.cat([negative_prompt_embeds, prompt_embeds])


def predict_noise(
    unet: Callable,
    scheduler,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    conditions: torch.Tensor,
    guidance_scale: float,
) -> torch.Tensor:
    """The guided noise prediction for `latents` at `timestep` (float32, latents' shape)."""
    do_cfg = guidance_scale > 1.0
    model_input = torch.cat([latents] * 2) if do_cfg else latents
    model_input = scheduler.scale_model_input(model_input, timestep)
    out = unet(model_input.to(conditions.dtype), timestep, encoder_hidden_states=conditions)
    noise = (out.sample if hasattr(out, "sample") else out).to(latents.dtype)
    if not do_cfg:
        return noise
    noise_uncond, noise_cond = noise.chunk(2)
    return classifier_free_guidance(noise_uncond, noise_cond, guidance_scale)


def scheduler_step_kwargs(scheduler, generator: Optional[torch.Generator], eta: float) -> dict:
    """The keyword arguments that this scheduler's step() accepts among (eta, generator)."""
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


# ---------------------------------------------------------------------------------------------- one clip


def denoise_clip(
    unet: Callable,
    scheduler,
    noise: torch.Tensor,
    conditions: torch.Tensor,
    settings: LongVideoSettings,
    guides: Optional[Sequence[torch.Tensor]] = None,
    record_steps: int = 0,
    generator: Optional[torch.Generator] = None,
    on_step: Optional[Callable[[int], None]] = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Denoise one clip from its unit `noise`.

    `guides[i]`: the previous clip's latents at step i, already in this clip's frame order (DSG; None for
    clip 0 or with DSG off). Returns the final latents and, for the first `record_steps` steps, this clip's
    latents at each step aligned to the next clip (its first `overlap_frames` frames only).
    """
    scheduler.set_timesteps(settings.num_inference_steps, device=noise.device)
    timesteps = scheduler.timesteps
    latents = noise * scheduler.init_noise_sigma
    step_kwargs = scheduler_step_kwargs(scheduler, generator, settings.eta)
    m, t_total, gamma = settings.overlap_frames, settings.num_inference_steps, settings.denoise_guidance_gamma
    recorded: list[torch.Tensor] = []
    for i, t in enumerate(timesteps):
        if guides is not None and i < len(guides):
            latents = apply_staged_guidance(latents, guides[i], guided_frames(i, t_total, m, gamma))
        if i < record_steps:
            aligned = align_to_next_clip(latents, m, reverse=settings.frame_noise_reversion)
            recorded.append(aligned[:, :, :m].clone())
        noise_pred = predict_noise(unet, scheduler, latents, t, conditions, settings.guidance_scale)
        latents = scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
        if on_step is not None:
            on_step(i)
    return latents, recorded


# ---------------------------------------------------------------------------------------------- all clips


def draw_noise(shape: Sequence[int], generator: Optional[torch.Generator], device, dtype=torch.float32):
    """A unit Gaussian draw made on the generator's own device, then moved to `device`: a CPU generator gives
    the same noise whether the model runs on CPU or GPU."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=dtype).to(device)


def sample_long_video(
    unet: Callable,
    scheduler,
    prompt_embeds: torch.Tensor,
    negative_prompt_embeds: Optional[torch.Tensor],
    settings: LongVideoSettings,
    latent_shape: Sequence[int],
    generator: Optional[torch.Generator] = None,
    initial_noise: Optional[torch.Tensor] = None,
    fresh_noise: Optional[Sequence[Optional[torch.Tensor]]] = None,
    on_step: Optional[Callable[[int, int], None]] = None,
) -> Iterator[ClipLatents]:
    """Yield the clips of one long video, one at a time.

    latent_shape: (batch, channels, num_frames, h, w) of one clip. Random draws, in this order, all from
    `generator`: clip 0's initial noise, then for each clip k ≥ 1 a whole-clip fresh draw (drawn even when PNS
    is off, so that switching FNR/PNS/DSG never shifts the random stream). `initial_noise` and
    `fresh_noise[k]` replace the corresponding draws (for reproducing a recorded run).
    `on_step(clip_index, step_index)` is called after every step.
    """
    if len(latent_shape) != 5 or latent_shape[2] != settings.num_frames:
        raise ValueError(
            f"latent_shape must be (batch, channels, num_frames={settings.num_frames}, h, w); got {tuple(latent_shape)}"
        )
    device = prompt_embeds.device
    conditions = text_conditions(prompt_embeds, negative_prompt_embeds, settings.guidance_scale)
    record_steps = 0
    if settings.uses_guidance and settings.num_clips > 1:
        record_steps = last_guided_step(
            settings.num_inference_steps, settings.overlap_frames, settings.denoise_guidance_gamma
        )

    previous_noise: Optional[torch.Tensor] = None
    guides: Optional[list[torch.Tensor]] = None
    for k in range(settings.num_clips):
        if k == 0:
            noise = initial_noise if initial_noise is not None else draw_noise(latent_shape, generator, device)
        else:
            fresh = fresh_noise[k] if fresh_noise is not None and k < len(fresh_noise) else None
            if fresh is None:
                fresh = draw_noise(latent_shape, generator, device)
            noise = next_clip_noise(
                previous_noise,
                fresh.to(device, previous_noise.dtype),
                settings.overlap_frames,
                settings.noise_recycle_alpha,
                frame_noise_reversion=settings.frame_noise_reversion,
                past_dependent_noise_sampling=settings.past_dependent_noise,
            )
        noise = noise.to(device=device, dtype=torch.float32)
        if tuple(noise.shape) != tuple(latent_shape):
            raise ValueError(f"clip {k}'s noise has shape {tuple(noise.shape)}, expected {tuple(latent_shape)}")
        step_cb = (lambda i, k=k: on_step(k, i)) if on_step is not None else None
        latents, recorded = denoise_clip(
            unet,
            scheduler,
            noise,
            conditions,
            settings,
            guides=guides if settings.uses_guidance else None,
            record_steps=record_steps if k + 1 < settings.num_clips else 0,
            generator=generator,
            on_step=step_cb,
        )
        previous_noise, guides = noise, recorded
        yield ClipLatents(index=k, latents=latents, initial_noise=noise)
