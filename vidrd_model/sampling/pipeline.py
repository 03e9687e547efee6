"""One long video from a prompt: encode the prompt, run the iterative sampler, decode each clip as soon as it
is sampled and hand its frames to a writer. Nothing grows with the number of clips."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from .decode import decode_clip, kept_frames, latents_video_to_uint8, output_frame_count, vae_scale_factor
from .loop import LongVideoSettings, sample_long_video
from .text import encode_prompt


def latent_shape_for(unet, vae, settings: LongVideoSettings, height: Optional[int], width: Optional[int]):
    """(1, C, N, h, w) for a video of height×width pixels (default: the UNet's sample size × VAE factor)."""
    f = vae_scale_factor(vae)
    height = height or unet.config.sample_size * f
    width = width or unet.config.sample_size * f
    if height % f or width % f:
        raise ValueError(f"height and width must be multiples of the VAE factor {f}; got {height}x{width}")
    return (1, unet.config.in_channels, settings.num_frames, height // f, width // f), (height, width)


class _Progress:
    """Two tqdm bars: clips, and steps within the current clip."""

    def __init__(self, enabled: bool, num_clips: int, steps_per_clip: int):
        self.enabled = enabled
        if enabled:
            from tqdm.auto import tqdm

            self.clips = tqdm(total=num_clips, desc="clips", unit="clip", position=0)
            self.steps = tqdm(total=steps_per_clip, desc="steps", unit="step", position=1, leave=False)

    def step(self, clip: int, step: int) -> None:
        if self.enabled:
            self.steps.update(1)

    def clip_done(self) -> None:
        if self.enabled:
            self.clips.update(1)
            self.steps.reset()

    def close(self) -> None:
        if self.enabled:
            self.steps.close()
            self.clips.close()


@torch.no_grad()
def generate_long_video(
    components,
    prompt: str,
    settings: LongVideoSettings,
    write_clip: Callable[[np.ndarray], None],
    scheduler,
    negative_prompt: str = "watermark",
    height: Optional[int] = None,
    width: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    decode_mode: str = "temporal",
    drop_overlap: bool = False,
    progress: bool = True,
) -> dict:
    """Sample one video and pass each clip's uint8 frames (F, H, W, 3) to `write_clip` as soon as it is ready.

    `components` has unet, vae, text_encoder, tokenizer. Returns what was produced (frame count, size).
    """
    unet, vae = components.unet, components.vae
    device = next(unet.parameters()).device
    shape, (h, w) = latent_shape_for(unet, vae, settings, height, width)
    cond = encode_prompt(components.tokenizer, components.text_encoder, prompt, device)
    uncond = encode_prompt(components.tokenizer, components.text_encoder, negative_prompt or "", device)
    scheduler.set_timesteps(settings.num_inference_steps)
    bar = _Progress(progress, settings.num_clips, len(scheduler.timesteps))
    written = 0
    try:
        for clip in sample_long_video(
            unet, scheduler, cond, uncond, settings, shape, generator=generator, on_step=bar.step
        ):
            frames = decode_clip(vae, clip.latents, mode=decode_mode)[0]
            frames = frames[kept_frames(clip.index, settings.num_frames, settings.overlap_frames, drop_overlap)]
            write_clip(latents_video_to_uint8(frames))
            written += frames.shape[0]
            del clip, frames
            bar.clip_done()
    finally:
        bar.close()
    expected = output_frame_count(settings.num_clips, settings.num_frames, settings.overlap_frames, drop_overlap)
    assert written == expected, (written, expected)
    return {"frames": written, "height": h, "width": w, "latent_shape": list(shape)}
