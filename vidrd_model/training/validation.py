"""Validation videos during UNet training: a fixed prompt list through the iterative sampler, written as mp4
under OUTPUT/validation/ (and to TensorBoard). Needs `vidrd_model.sampling`; skipped with a log line if absent."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


@torch.no_grad()
def render_validation(task, config, step: int, output_dir: Path, metrics, ema=None) -> list[Path]:
    if task.component != "unet" or not config.run.validation_prompts:
        return []
    try:
        from vidrd_model.sampling import LongVideoSettings, make_scheduler, sample_long_video
        from vidrd_model.sampling.writer import VideoWriter, latents_video_to_uint8
    except ImportError as exc:
        logger.info("validation videos skipped: the iterative sampler is not available (%s)", exc)
        return []
    unet, vae, device = task.unet, task.vae, task.device
    clip = config.data.clip
    frames = clip.num_frames
    settings = LongVideoSettings(num_clips=config.run.validation_num_clips, num_frames=frames,
                                 overlap_frames=frames // 2 if frames > 1 else 0,
                                 num_inference_steps=config.run.validation_steps, guidance_scale=7.5)
    scheduler = make_scheduler("ddim", task.scheduler.config)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    shape = (1, unet.config.in_channels, frames, clip.height // factor, clip.width // factor)
    was_training = unet.training
    unet.eval()
    paths = []
    swap = ema.swapped_in(task.trainable) if ema is not None else contextlib.nullcontext()
    try:
        with swap:
            # The sampler feeds the UNet in the embeddings' dtype: match the (float32) trainable UNet, since
            # validation runs outside training's autocast while the text encoder may be bf16/fp16.
            empty = task.text_encoder(task.empty_ids)[0].to(unet.dtype)
            for i, prompt in enumerate(config.run.validation_prompts):
                ids = task.tokenizer([prompt], padding="max_length", truncation=True, return_tensors="pt",
                                     max_length=task.empty_ids.shape[1]).input_ids.to(device)
                text = task.text_encoder(ids)[0].to(unet.dtype)
                generator = torch.Generator(device).manual_seed(config.run.seed + i)
                path = output_dir / "validation" / f"step{step:08d}_{i:02d}.mp4"
                with VideoWriter(path, fps=8, metadata={"prompt": prompt, "step": step}) as writer:
                    for clip_latents in sample_long_video(unet, scheduler, text, empty, settings, shape, generator):
                        z = clip_latents.latents[0].permute(1, 0, 2, 3) / task.scaling_factor  # F, C, h, w
                        decoded = vae.decode(z.to(task.weight_dtype), num_frames=frames).sample
                        video = latents_video_to_uint8(decoded)
                        writer.write_clip(video)
                metrics.log_video(step, f"validation/{i:02d}", video)
                paths.append(path)
    except Exception as exc:  # noqa: BLE001 - a broken preview must not end a long training run
        logger.warning("validation at step %d failed, training goes on: %r", step, exc)
    finally:
        unet.train(was_training)
    return paths

