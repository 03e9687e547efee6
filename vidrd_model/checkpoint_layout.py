"""Where `vidrd-model train` puts things, read by training (save / resume) and by sampling (load a checkpoint).

    OUTPUT/
      checkpoints/checkpoint-{step:08d}/
        unet/ | vae/                    the trained component, diffusers format (safetensors)
        unet_ema/ | vae_ema/            its EMA weights, when EMA is on
        training_state.json             everything that is not a tensor (step, schedules, loader position, ...)
        training_state.safetensors      every tensor of the state (optimizer moments, EMA shadow, RNG states)
        train_config.yaml               the resolved config (its model.pretrained is the base model)
      model/                            a complete VidRD model folder for the sampler (written at the end)
      logs/metrics.csv, logs/tensorboard/, logs/data_rank{r}.json

A checkpoint holds no pickle: `training_state.pt` (the old, pickled format) is only ever read with
`torch.load(weights_only=True)`, which refuses anything but plain tensors and containers.
"""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINTS = "checkpoints"
STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
LEGACY_STATE = "training_state.pt"
TRAIN_CONFIG = "train_config.yaml"
EMA_SUFFIX = "_ema"
MODEL_DIR = "model"
LOGS = "logs"
TRAINED_COMPONENTS = ("unet", "vae")

_NAME = re.compile(r"^checkpoint-(\d{8})$")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f"checkpoint-{step:08d}"


def has_training_state(path: str | Path) -> bool:
    """A complete checkpoint (new format), or one in the legacy format (which resume refuses if it is unsafe)."""
    p = Path(path)
    return (p / STATE_JSON).is_file() or (p / LEGACY_STATE).is_file()


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (a `.tmp` one being written is not listed)."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and has_training_state(p)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def is_training_checkpoint(path: str | Path) -> bool:
    p = Path(path)
    return has_training_state(p) and not (p / "model_index.json").is_file()


def recorded_base_model(path: str | Path) -> str | None:
    """The model a checkpoint was trained from (`model.pretrained` of its train_config.yaml), if recorded."""
    cfg_file = Path(path) / TRAIN_CONFIG
    if not cfg_file.is_file():
        return None
    import yaml

    cfg = yaml.safe_load(cfg_file.read_text()) or {}
    return (cfg.get("model") or {}).get("pretrained") or None


def trained_component_folders(path: str | Path, use_ema: bool = True) -> dict[str, Path]:
    """{component: folder} of the weights a checkpoint holds; the EMA copy is preferred when `use_ema`."""
    p = Path(path)
    out = {}
    for name in TRAINED_COMPONENTS:
        for folder in ([name + EMA_SUFFIX] if use_ema else []) + [name]:
            if (p / folder).is_dir():
                out[name] = p / folder
                break
    return out
