"""The objective's options: offset noise per video, v-prediction target, min-SNR weights; config errors."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from vidrd_model.training.config import load_config, parse_overrides
from vidrd_model.training.diffusion_losses import denoising_loss, diffusion_target, sample_noise, snr
from vidrd_model.training.ema import ParameterEMA
from vidrd_model.training.parameter_groups import select_trainable

SD21 = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def test_offset_noise_is_one_value_per_video_and_channel():
    latents = torch.zeros(2, 4, 6, 8, 8)
    plain = sample_noise(latents, torch.Generator().manual_seed(0), 0.0)
    offset = sample_noise(latents, torch.Generator().manual_seed(0), 0.5)
    diff = offset - plain
    assert torch.allclose(diff, diff[:, :, :1, :1, :1].expand_as(diff))  # same over frames and pixels
    assert not torch.allclose(diff[0], diff[1])                           # differs between videos


def test_v_prediction_target_and_min_snr_weights():
    eps = DDPMScheduler(**SD21)
    v = DDPMScheduler(**SD21, prediction_type="v_prediction")
    x0, noise, t = torch.randn(3, 4, 2, 4, 4), torch.randn(3, 4, 2, 4, 4), torch.tensor([10, 500, 990])
    assert torch.equal(diffusion_target(eps, x0, noise, t), noise)
    a = eps.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1, 1)
    s = (1 - eps.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(diffusion_target(v, x0, noise, t), a * noise - s * x0)
    pred = torch.zeros_like(noise)
    per_video = (noise ** 2).mean(dim=(1, 2, 3, 4))
    ratio = snr(eps.alphas_cumprod, t)
    expected = (per_video * torch.clamp(ratio, max=5.0) / ratio).mean()
    torch.testing.assert_close(denoising_loss(pred, noise, t, eps, 5.0), expected)
    torch.testing.assert_close(denoising_loss(pred, noise, t, eps, None), (noise ** 2).mean())


def test_parameter_groups_and_ema():
    model = torch.nn.ModuleDict({"attn1": torch.nn.Linear(2, 2), "ff": torch.nn.Linear(2, 2)})
    chosen = select_trainable(model, [r"attn1\."])
    assert set(chosen) == {"attn1.weight", "attn1.bias"} and not model["ff"].weight.requires_grad
    with pytest.raises(ValueError, match="names look like"):
        select_trainable(model, ["temp_conv"])
    ema = ParameterEMA(chosen, decay=0.5, warmup=False)
    with torch.no_grad():
        model["attn1"].weight.add_(2.0)
    ema.update(chosen)
    expected = model["attn1"].weight - 1.0
    torch.testing.assert_close(ema.shadow["attn1.weight"], expected)
    with ema.swapped_in(chosen):
        torch.testing.assert_close(model["attn1"].weight, expected)
    torch.testing.assert_close(model["attn1"].weight, expected + 1.0)


def test_config_defaults_overrides_and_errors():
    cfg = load_config()
    assert cfg.diffusion.prediction_type == "epsilon" and cfg.diffusion.text_dropout == 0.1
    assert cfg.model.trainable_patterns == [r"\.temp_", r"\.attn1\.", r"\.attn2\."]
    cfg = load_config(overrides=parse_overrides(["optim.learning_rate=1e-4", "data.clip.num_frames=8"]))
    assert cfg.optim.learning_rate == 1e-4 and cfg.data.clip.num_frames == 8
    with pytest.raises(ValueError, match="allowed: .*learning_rate"):
        load_config(overrides={"optim": {"lr": 1}})
    with pytest.raises(ValueError, match="v_prediction"):
        load_config(overrides={"diffusion": {"prediction_type": "sample"}})
