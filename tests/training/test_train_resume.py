"""Exact resume (N straight = N/2 + resume + N/2) and parameter groups (only the chosen ones change)."""

from __future__ import annotations

import torch

from tests.training.conftest import tiny_train_config
from vidrd_model.training import run_training, single_process_context
from vidrd_model.training.checkpointing import list_checkpoints, load_training_state
from vidrd_model.training.runner import build_task

CPU = torch.device("cpu")


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _train(cfg, resume=None):
    task = build_task("unet", cfg, CPU)
    return task, run_training(task, cfg, single_process_context("cpu"), resume=resume)


def test_resume_equals_straight_run_and_only_chosen_groups_change(built_shards, tiny_model, tmp_path):
    # a random offset and min-SNR on, so that every RNG stream and option takes part
    common = dict(diffusion={"noise_offset": 0.1, "snr_gamma": 5.0}, ema={"decay": 0.9})
    straight_cfg = tiny_train_config(built_shards, tiny_model, tmp_path / "straight", run={"max_steps": 4}, **common)
    task = build_task("unet", straight_cfg, CPU)
    before = {"unet": _snapshot(task.unet), "vae": _snapshot(task.vae), "text": _snapshot(task.text_encoder)}
    straight = run_training(task, straight_cfg, single_process_context("cpu"))

    # only the configured groups change; the frozen ones are bit-identical
    after = _snapshot(task.unet)
    trainable = set(task.trainable)
    assert trainable and all((".temp_" in n or ".attn1." in n or ".attn2." in n) for n in trainable)
    frozen = [n for n in after if n not in trainable]
    assert frozen and all(torch.equal(after[n], before["unet"][n]) for n in frozen)
    changed = [n for n in trainable if not torch.equal(after[n], before["unet"][n])]
    assert len(changed) >= 0.9 * len(trainable), f"{len(changed)} of {len(trainable)} trainable tensors changed"
    assert all(torch.equal(v, before["vae"][k]) for k, v in task.vae.state_dict().items())
    assert all(torch.equal(v, before["text"][k]) for k, v in task.text_encoder.state_dict().items())

    # 2 steps, stop; then resume from the checkpoint to step 4
    run_dir = tmp_path / "halves"
    _, first = _train(tiny_train_config(built_shards, tiny_model, run_dir, run={"max_steps": 2}, **common))
    assert [p.name for p in list_checkpoints(run_dir)] == ["checkpoint-00000002"]
    resumed_task, second = _train(tiny_train_config(built_shards, tiny_model, run_dir, run={"max_steps": 4}, **common),
                                  resume="latest")
    assert first.losses + second.losses == straight.losses  # same batches, same noise, same timesteps
    for name, value in resumed_task.unet.state_dict().items():
        torch.testing.assert_close(value, after[name], rtol=0, atol=1e-6, msg=name)
    ema_straight = load_training_state(list_checkpoints(tmp_path / "straight")[-1])["ema"]
    ema_resumed = load_training_state(list_checkpoints(run_dir)[-1])["ema"]
    assert ema_resumed["num_updates"] == ema_straight["num_updates"] == 4
    for name, value in ema_straight["shadow"].items():
        torch.testing.assert_close(ema_resumed["shadow"][name], value, rtol=0, atol=1e-6)
