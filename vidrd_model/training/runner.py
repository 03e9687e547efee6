"""One training process, whatever launched it: load the model, build the task, run the loop.

`vidrd-model train` calls `train_process` directly (one process) or through Ray Train (one call per worker):
the same function either way.
"""

from __future__ import annotations

import logging

import torch

from .config import TrainConfig, config_from_dict
from .distributed import DistContext
from .loop import TrainResult, run_training, weight_dtype_for

logger = logging.getLogger(__name__)

TASKS = ("unet", "vae")


def load_components(pretrained: str | None, device: torch.device):
    if not pretrained:
        raise ValueError("no model to train from: pass --pretrained DIR (a VidRD model folder, e.g. one made by "
                         "`vidrd-model init`, or an SD 2.x folder, inflated on load)")
    from ..sd_inflate import load_any_model
    return load_any_model(pretrained, device=device, dtype=torch.float32, what="--pretrained")


def build_task(kind: str, config: TrainConfig, device: torch.device):
    components = load_components(config.model.pretrained, torch.device("cpu"))
    weight_dtype = weight_dtype_for(config.precision.mixed_precision, device)
    if kind == "unet":
        from .unet_task import UNetDiffusionTask
        return UNetDiffusionTask(components, config, device, weight_dtype)
    if kind == "vae":
        from .vae_task import VAEDecoderTask
        return VAEDecoderTask(components, config, device, weight_dtype)
    raise ValueError(f"unknown training task {kind!r}; one of {TASKS}")


def train_process(kind: str, config: TrainConfig | dict, dist: DistContext, resume: str | None = None) -> TrainResult:
    if isinstance(config, dict):
        config = config_from_dict(config)
    task = build_task(kind, config, dist.device)
    return run_training(task, config, dist, resume)
