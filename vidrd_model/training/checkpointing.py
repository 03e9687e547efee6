"""Checkpoints: OUTPUT/checkpoints/checkpoint-{step:08d}/ holding the trained component in diffusers format
(`unet/` or `vae/`, plus `*_ema/` with EMA), `training_state.pt` and the resolved config.

Written under a temporary name and renamed when complete, so a run killed mid-save never leaves a checkpoint
that `--resume latest` would pick up half-written. Only the newest `keep_last` are kept.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml

logger = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"
_NAME = re.compile(r"^checkpoint-(\d{8})$")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"checkpoint-{step:08d}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


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
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume {resume}: no {STATE_FILE} there; pass a checkpoint-NNNNNNNN folder or 'latest'")
    return path


def rng_state(generator: torch.Generator) -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "generator": generator.get_state(), "generator_device": str(generator.device)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict, generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
    torch.save(training_state, tmp / STATE_FILE)
    (tmp / "train_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    if keep_last > 0:
        for old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_training_state(path: Path) -> dict:
    # Our own file (optimizer state, RNG tuples, numpy arrays): not loadable with weights_only.
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
