"""Command-line flags shared by `vidrd-model train` and `train-vae`, and how they become a TrainConfig.

Precedence: the packaged defaults < --config FILE < --set section.key=value < the named flags below.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .config import TrainConfig, load_config, parse_overrides

logger = logging.getLogger(__name__)

# flag dest -> config path; a flag left unset keeps the config's value
FLAG_TO_CONFIG = {
    "shards": "data.shards",
    "pretrained": "model.pretrained",
    "output_dir": "run.output_dir",
    "max_steps": "run.max_steps",
    "seed": "run.seed",
    "batch_size": "data.batch_size",
    "num_frames": "data.clip.num_frames",
    "frame_stride": "data.clip.frame_stride",
    "dataloader_workers": "data.num_workers",
    "learning_rate": "optim.learning_rate",
    "warmup_steps": "optim.warmup_steps",
    "gradient_accumulation_steps": "optim.gradient_accumulation_steps",
    "mixed_precision": "precision.mixed_precision",
    "checkpoint_every": "run.checkpoint_every",
    "keep_last": "run.keep_last",
    "log_every": "run.log_every",
}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--shards", nargs="+", help="shard tars: globs, brace patterns ({000000..000009}), directories or URLs")
    p.add_argument("--pretrained", help="model to start from: a VidRD model folder (`vidrd-model init` / `convert`), "
                   "or a Stable Diffusion 2.x folder in diffusers layout (inflated on load, said in the log)")
    p.add_argument("--output-dir", help="where checkpoints, logs and the final model folder go")
    p.add_argument("--config", help="YAML file overriding the packaged defaults (same sections)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config value, e.g. --set diffusion.snr_gamma=5 (repeatable)")
    p.add_argument("--max-steps", type=int, help="optimizer steps to train (config run.max_steps)")
    p.add_argument("--seed", type=int, help="random seed of the run (config run.seed)")
    p.add_argument("--batch-size", type=int, help="clips per device and micro-step")
    p.add_argument("--mix", metavar="NAME=W,...", help="source mixing weights, e.g. laion=0.4,ucf101=0.05 (every "
                   "source of the shards needs one; 0 leaves a source out). Default: the `weight` of each source "
                   "in the manifest that built the shards (their dataset_info.json); without weights, shards are "
                   "drawn alike")
    p.add_argument("--num-frames", type=int, help="frames per training clip (config data.clip.num_frames)")
    p.add_argument("--frame-stride", type=int, help="take every N-th frame of a sample (config data.clip.frame_stride)")
    p.add_argument("--resolution", type=int, nargs="+", metavar="PX", help="H [W] of training clips")
    p.add_argument("--dataloader-workers", type=int, help="decoding processes per device (0: in the training process)")
    p.add_argument("--learning-rate", type=float, help="peak learning rate (config optim.learning_rate)")
    p.add_argument("--warmup-steps", type=int, help="linear warm-up steps (config optim.warmup_steps)")
    p.add_argument("--gradient-accumulation-steps", type=int,
                   help="micro-steps per optimizer step (config optim.gradient_accumulation_steps)")
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"],
                   help="autocast precision: bf16 on Ampere+ GPUs, fp16 with loss scaling (config precision.mixed_precision)")
    p.add_argument("--gradient-checkpointing", action="store_true", default=None,
                   help="recompute activations in backward: less memory, more compute")
    p.add_argument("--no-ema", action="store_true", help="train without the EMA copy")
    p.add_argument("--checkpoint-every", type=int, help="save a checkpoint every N optimizer steps")
    p.add_argument("--keep-last", type=int, help="keep only the newest K checkpoints")
    p.add_argument("--log-every", type=int, help="log metrics every N optimizer steps (config run.log_every)")
    p.add_argument("--resume", nargs="?", const="latest", metavar="latest|DIR",
                   help="continue from the newest checkpoint in --output-dir, or from DIR")
    p.add_argument("--device", help="single-process device (default: cuda if available, else cpu)")
    g = p.add_argument_group("scale-out (Ray Train)")
    g.add_argument("--num-workers", type=int, default=1, help="data-parallel training processes; >1 runs on Ray Train")
    g.add_argument("--use-gpu", action="store_true", help="one GPU per Ray worker (NCCL); without it, CPU + gloo")
    g.add_argument("--ray-address", help="join a Ray cluster ('auto' or ray://host:10001); default: local Ray")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each Ray Train worker reserves (default 1)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def config_from_args(args: argparse.Namespace, default_name: str, extra: dict | None = None) -> TrainConfig:
    overrides = parse_overrides(args.set)
    flags = dict(extra or {})
    for dest, path in FLAG_TO_CONFIG.items():
        value = getattr(args, dest, None)
        if value is not None:
            flags[path] = value
    if getattr(args, "mix", None):
        from ..data.source_mix import parse_mix
        flags["data.mix"] = parse_mix(args.mix)
    if args.resolution:
        flags["data.clip.height"] = args.resolution[0]
        flags["data.clip.width"] = args.resolution[-1]
    if args.gradient_checkpointing:
        flags["precision.gradient_checkpointing"] = True
    if args.no_ema:
        flags["ema.enabled"] = False
    for path, value in flags.items():
        node = overrides
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    config = load_config(default_name, args.config, overrides)
    if not config.data.shards:
        raise SystemExit("no training data: pass --shards 'out/NAME/shards/*.tar' (tars written by `vidrd-data build`)")
    if not config.model.pretrained:
        raise SystemExit("no model: pass --pretrained DIR (a VidRD model folder from `vidrd-model init` / `convert`, "
                         "or an SD 2.x folder, inflated on load)")
    return config


def launch(kind: str, args: argparse.Namespace, config: TrainConfig) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from disk, never from the network
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    if args.num_workers > 1 or args.use_gpu or args.ray_address:
        from .ray_launcher import train_with_ray
        metrics = train_with_ray(kind, config, args.num_workers, args.use_gpu, args.ray_address, args.resume,
                                 args.cpus_per_worker)
        print(json.dumps(metrics, indent=2, default=str))
        return 0
    from .distributed import single_process_context
    from .runner import train_process
    from .state_io import UnsafeCheckpointError
    try:
        result = train_process(kind, config, single_process_context(args.device), args.resume)
    except UnsafeCheckpointError as exc:  # a refusal to run a file's code is an answer, not a crash
        print(f"vidrd-model {'train' if kind == 'unet' else 'train-vae'}: {exc}", file=sys.stderr)
        return 2
    summary = {"step": result.step, "final_loss": result.losses[-1] if result.losses else None,
               "skipped_samples": result.skipped, "checkpoint": result.checkpoint, "model_dir": result.model_dir}
    print(json.dumps(summary, indent=2))
    return 0
