"""A tiny random VidRD model overfits a few clips from shards built by `vidrd-data build`."""

from __future__ import annotations

import dataclasses

import torch

from tests.training.conftest import tiny_train_config
from vidrd_model.data import build_train_loader
from vidrd_model.training import run_training, single_process_context
from vidrd_model.training.runner import build_task


@torch.no_grad()
def fixed_eval_loss(task, batch, draws: int = 6) -> float:
    """The denoising loss on one fixed batch with a fixed set of noises and timesteps (a seeded generator)."""
    task.unet.eval()
    generator = torch.Generator().manual_seed(123)
    value = sum(task.loss(batch, generator, task.unet)[0].item() for _ in range(draws)) / draws
    task.unet.train()
    return value


def test_tiny_model_overfits_a_few_clips(built_shards, tiny_model, tmp_path):
    one_shard = sorted(built_shards.glob("*.tar"))[0]  # 4 clips
    # Every UNet parameter trains here: a random tiny UNet learns far faster whole than through its
    # attention and temporal layers alone, and the test is about the loop, not the parameter groups.
    cfg = tiny_train_config(one_shard, tiny_model, tmp_path / "run", model={"trainable_patterns": ["."]},
                            optim={"learning_rate": 3e-3}, diffusion={"text_dropout": 0.0}, ema={"enabled": False},
                            run={"max_steps": 15, "seed": 0})
    task = build_task("unet", cfg, torch.device("cpu"))
    eval_data = dataclasses.replace(cfg.data, batch_size=4, shuffle_buffer=1)
    batch = next(iter(build_train_loader(eval_data, task.tokenizer)[0]))
    before = fixed_eval_loss(task, batch)
    result = run_training(task, cfg, single_process_context("cpu"))
    after = fixed_eval_loss(task, batch)
    assert after < 0.5 * before, (before, after, result.losses)
    assert sum(result.losses[-5:]) < sum(result.losses[:5])
    assert (tmp_path / "run" / "model" / "unet").is_dir()  # a full model folder for the sampler
    assert "loss" in (tmp_path / "run" / "logs" / "metrics.csv").read_text().splitlines()[0]
