"""Checkpoints (layout: `vidrd_model.checkpoint_layout`): the trained component in diffusers format, the
training state as JSON + safetensors (no pickle, see `state_io`), and the resolved config.

Written under a temporary name and renamed when complete, so a run killed mid-save never leaves a checkpoint
that `--resume latest` would pick up half-written. Only the newest `keep_last` are kept.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml

from ..checkpoint_layout import TRAIN_CONFIG, checkpoint_dir, has_training_state, list_checkpoints
from .state_io import load_training_state, save_training_state

logger = logging.getLogger(__name__)

__all__ = ["checkpoint_dir", "list_checkpoints", "load_training_state", "resolve_resume", "restore_rng_state",
           "rng_state", "save_checkpoint"]


def resolve_resume(resume: str | None, output_dir: str | Path) -> Path | None:
    """`--resume latest` (newest complete checkpoint in OUTPUT, or none: start fresh) or a checkpoint path."""
    if not resume:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            logger.info("--resume latest: no checkpoint in %s yet, starting from step 0", output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not has_training_state(path):
        raise FileNotFoundError(f"--resume {resume}: no training state there; pass a checkpoint-NNNNNNNN folder "
                                "or 'latest'")
    return path


def rng_state(generator: torch.Generator) -> dict:
    """Every RNG's state as tensors and plain numbers (saved without pickle)."""
    version, mt, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(), "generator": generator.get_state(), "generator_device": str(generator.device),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict, generator: torch.Generator) -> None:
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss_next"]))
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output_dir, step: int, save_weights, training_state: dict, config: dict, keep_last: int) -> Path:
    """`save_weights(folder)` writes the diffusers-format folders; rank 0 calls this."""
    final = checkpoint_dir(output_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(tmp)
    save_training_state(tmp, training_state)
    (tmp / TRAIN_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    if keep_last > 0:
        for old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final
