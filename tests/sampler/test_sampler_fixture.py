"""The sampler reproduces the released implementation's long-video run (fixtures/vidrd_reference)."""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

FIXTURES = Path(
    os.environ.get("VIDRD_FIXTURES", Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures")
) / "vidrd_reference"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"reference fixtures not found at {FIXTURES}")


def test_reproduces_released_sampler_run():
    from vidrd_model.models import VidRDUNet3DConditionModel
    from vidrd_model.sampling.loop import LongVideoSettings, sample_long_video
    from vidrd_model.sampling.schedulers import make_scheduler

    meta = json.loads((FIXTURES / "meta.json").read_text())
    unet = VidRDUNet3DConditionModel.from_config(meta["unet3d_config"])
    unet.load_state_dict(load_file(FIXTURES / "unet3d_state_dict.safetensors"), strict=True)
    unet.eval()
    io = load_file(FIXTURES / "sampler_io.safetensors")
    s = meta["sampler"]
    settings = LongVideoSettings(
        num_clips=s["num_clips"],
        num_frames=s["num_frames"],
        overlap_frames=s["overlap_frames"],
        noise_recycle_alpha=s["noise_recycle_alpha"],
        denoise_guidance_gamma=s["denoise_guidance_gamma"],
        num_inference_steps=s["num_inference_steps"],
        guidance_scale=s["guidance_scale"],
    )
    fresh = [None] + [io[f"fresh_noise_clip{k}_unit"] for k in range(1, s["num_clips"])]
    with torch.no_grad():
        clips = list(
            sample_long_video(
                unet,
                make_scheduler("ddim", meta["scheduler"]),
                io["prompt_embeds"],
                io["negative_prompt_embeds"],
                settings,
                io["initial_latents"].shape,
                initial_noise=io["initial_latents"],
                fresh_noise=fresh,
            )
        )
    assert [c.index for c in clips] == list(range(s["num_clips"]))
    for c in clips:
        torch.testing.assert_close(c.latents, io[f"final_latents_clip{c.index}"], atol=1e-3, rtol=1e-3)
