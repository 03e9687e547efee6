"""The training loop shared by `train` (UNet) and `train-vae` (temporal decoder), single process or Ray worker.

A *task* (UNetDiffusionTask, VAEDecoderTask) says what a step computes and which weights it saves; this loop
owns the rest: data, optimiser, LR schedule, accumulation, mixed precision, clipping, EMA, checkpoints,
exact resume, logs and validation.

What resume restores exactly: model weights, optimizer and LR-scheduler state, gradient scaler, EMA, the step,
every RNG (Python, NumPy, torch CPU/CUDA and the training generator, per rank) and the data position of each
reader (epoch, samples consumed after the seeded shuffle, batches waiting in a bucket, skip counters). With
the same shards, world size, dataloader workers, batch size and clip settings, N steps straight and N/2 +
resume + N/2 see the same batches and the same noise. Change any of these and the data order restarts
(from the saved epoch) while everything else is still restored. On CPU the parameters then match bit for
bit; on GPU they match up to CUDA's non-deterministic kernels (seen on an H100: same losses to 1e-5,
parameters within 2e-4 after 4 steps at lr 1e-3); `torch.use_deterministic_algorithms(True)` closes that gap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers.optimization import get_scheduler

from ..checkpoint_layout import LOGS, MODEL_DIR
from ..data.shard_loader import build_train_loader
from .checkpointing import (load_training_state, resolve_resume, restore_rng_state, rng_state, save_checkpoint)
from .config import TrainConfig
from .distributed import DistContext
from .ema import ParameterEMA
from .metrics_log import MetricsLog, Progress
from .parameter_groups import describe

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    step: int = 0
    losses: list[float] = field(default_factory=list)     # this rank's loss per optimizer step of this run
    skipped: dict[str, int] = field(default_factory=dict)  # samples skipped by this rank's readers, by reason
    shards_read: list[str] = field(default_factory=list)   # shards this rank took batches from
    contributed: dict[str, int] = field(default_factory=dict)  # samples this rank trained on, by source (all runs)
    checkpoint: str | None = None
    model_dir: str | None = None
    samples_per_s: float = 0.0
    step_end_times: list[float] = field(default_factory=list)  # time.perf_counter() after each step


def weight_dtype_for(mixed_precision: str, device: torch.device) -> torch.dtype:
    """Dtype of the frozen modules: half precision on GPU under mixed precision, else float32."""
    if device.type != "cuda" or mixed_precision == "no":
        return torch.float32
    return torch.bfloat16 if mixed_precision == "bf16" else torch.float16


def _autocast(config: TrainConfig, device: torch.device):
    mp = config.precision.mixed_precision
    if mp == "no":
        return contextlib.nullcontext()
    if mp == "fp16" and device.type != "cuda":
        raise ValueError("precision.mixed_precision=fp16 needs a GPU; use bf16 on CPU")
    return torch.autocast(device.type, dtype=torch.bfloat16 if mp == "bf16" else torch.float16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_training(task, config: TrainConfig, dist: DistContext, resume: str | None = None,
                 batch_source=None) -> TrainResult:
    """Train `task` to `config.run.max_steps`. `batch_source`: an iterable of batches that replaces the shard
    loader (to measure the loop without data loading, as benchmarks/bench_train_loader.py does)."""
    run, optim = config.run, config.optim
    output_dir = Path(run.output_dir)
    device = dist.device
    if config.precision.allow_tf32 and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(run.seed + dist.rank)
    generator = torch.Generator(device).manual_seed(run.seed * 1000 + dist.rank)
    model, trainable = task.model, task.trainable
    if dist.is_main:
        logger.info(describe(model, trainable))

    optimizer = torch.optim.AdamW(list(trainable.values()), lr=optim.learning_rate, betas=tuple(optim.betas),
                                  weight_decay=optim.weight_decay, eps=optim.eps,
                                  foreach=True if device.type == "cpu" else None)  # CPU default: one tensor at a time
    lr_scheduler = get_scheduler(optim.lr_scheduler, optimizer, num_warmup_steps=optim.warmup_steps,
                                 num_training_steps=run.max_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision.mixed_precision == "fp16")
    ema = ParameterEMA(trainable, config.ema.decay, config.ema.warmup) if config.ema.enabled else None

    step, loader_resume = 0, None
    resume_dir = resolve_resume(resume, output_dir)
    if resume_dir is not None:
        state = load_training_state(resume_dir)
        task.load_weights(resume_dir)
        optimizer.load_state_dict(state["optimizer"])
        lr_scheduler.load_state_dict(state["lr_scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        step = state["step"]
        per_rank = state["ranks"]
        if len(per_rank) == dist.world_size:
            restore_rng_state(per_rank[dist.rank]["rng"], generator)
            loader_resume = per_rank[dist.rank]["loader"]
        else:
            logger.warning("resuming %d ranks from a %d-rank checkpoint: weights, optimizer, EMA and step are "
                           "restored; data order and RNG start afresh", dist.world_size, len(per_rank))
        if dist.is_main:
            logger.info("resumed from %s at step %d", resume_dir, step)

    loader, data_progress = build_train_loader(config.data, getattr(task, "tokenizer", None), dist.rank,
                                               dist.world_size, resume=loader_resume,
                                               pin_memory=device.type == "cuda")
    wrapped = dist.wrap(model, find_unused_parameters=config.data.image_as_frame_ratio > 0)
    metrics = MetricsLog(output_dir, run.logger, enabled=dist.is_main, start_step=step)
    bar = Progress(run.max_steps, step, dist.is_main, desc=f"train {task.component}")
    result = TrainResult(step=step)
    accum = optim.gradient_accumulation_steps
    batches = iter(loader) if batch_source is None else iter(batch_source)

    def save(at_step: int) -> Path | None:
        ranks = dist.gather_objects({"rng": rng_state(generator), "loader": data_progress.state_dict()})
        path = None
        if dist.is_main:
            training_state = {
                "step": at_step, "optimizer": optimizer.state_dict(), "lr_scheduler": lr_scheduler.state_dict(),
                "scaler": scaler.state_dict(), "ema": ema.state_dict() if ema else None, "ranks": ranks,
                "world_size": dist.world_size,
            }
            path = save_checkpoint(output_dir, at_step, lambda d: task.save_weights(d, ema), training_state,
                                   config.to_dict(), run.keep_last)
            logger.info("saved %s", path)
        dist.barrier()
        return path

    try:
        while step < run.max_steps:
            step_loss, samples = 0.0, 0
            for micro in range(accum):
                batch = next(batches)
                data_progress.update(batch)
                samples += batch["pixel_values"].shape[0]
                sync = contextlib.nullcontext() if (micro == accum - 1 or not dist.distributed) else wrapped.no_sync()
                with sync:
                    with _autocast(config, device):
                        loss, parts = task.loss(batch, generator, wrapped)
                    scaler.scale(loss / accum).backward()
                step_loss += loss.item() / accum
            if optim.max_grad_norm:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable.values(), optim.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(trainable)
            step += 1
            if not math.isfinite(step_loss):
                raise FloatingPointError(f"loss is {step_loss} at step {step}: lower optim.learning_rate, or use "
                                         "bf16 instead of fp16")
            result.losses.append(step_loss)
            result.step_end_times.append(time.perf_counter())
            rates = bar.update(samples * dist.world_size, step_loss)
            if step % run.log_every == 0 or step == run.max_steps:
                mean_loss = dist.mean(torch.tensor(step_loss, device=device)).item()
                metrics.log(step, {"loss": mean_loss, "lr": lr_scheduler.get_last_lr()[0], **rates, **parts,
                                   **{f"skipped/{k}": v for k, v in data_progress.skipped.items()},
                                   **{f"samples/{k}": v for k, v in sorted(data_progress.contributed.items())}})
            if run.checkpoint_every and step % run.checkpoint_every == 0 and step < run.max_steps:
                result.checkpoint = str(save(step))
            if getattr(run, "validation_every", 0) and step % run.validation_every == 0 and dist.is_main:
                from .validation import render_validation
                render_validation(task, config, step, output_dir, metrics, ema)
        result.checkpoint = str(save(step))
        if dist.is_main and config.model.pretrained:
            result.model_dir = str(task.export(output_dir / MODEL_DIR, config.model.pretrained, ema))
            logger.info("model folder for the sampler: %s", result.model_dir)
        dist.barrier()
    finally:
        bar.close()
        metrics.close()
        del batches  # stops dataloader workers
    result.step = step
    result.skipped = data_progress.skipped
    result.shards_read = sorted(data_progress.urls_seen)
    result.contributed = dict(data_progress.contributed)
    result.samples_per_s = rates["samples_per_s"] if result.losses else 0.0
    _write_rank_report(output_dir, dist.rank, result)
    return result


def _write_rank_report(output_dir: Path, rank: int, result: TrainResult) -> None:
    """Per-rank data report: which shards this rank read and what it skipped (ranks may not share stdout)."""
    path = output_dir / LOGS / f"data_rank{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rank": rank, "step": result.step, "skipped": result.skipped,
                                "contributed": result.contributed, "shards_read": result.shards_read,
                                "time": time.time()}, indent=1))
    logger.info("rank %d trained on samples by source: %s", rank, result.contributed)
    if result.skipped:
        logger.warning("rank %d skipped samples: %s", rank, result.skipped)
