"""VidRD training: the UNet (temporal layers + spatial attention) and the temporal VAE decoder, from shards.

- `config`: the dataclass config and its YAML defaults (`vidrd_model/configs/train*_default.yaml`)
- `unet_task` / `vae_task`: what one step computes for each model
- `loop`: the shared loop (optimiser, AMP, accumulation, clipping, EMA, checkpoints, exact resume, logs)
- `runner`: one training process; `ray_launcher`: the same on Ray Train workers
"""

from .config import TrainConfig, config_from_dict, load_config, parse_overrides
from .distributed import DistContext, single_process_context
from .loop import TrainResult, run_training

__all__ = ["DistContext", "TrainConfig", "TrainResult", "config_from_dict", "load_config", "parse_overrides",
           "run_training", "single_process_context"]
