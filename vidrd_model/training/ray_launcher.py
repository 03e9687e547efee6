"""Data-parallel training on Ray Train: `TorchTrainer` starts `num_workers` processes (one per GPU with
`use_gpu`), sets up torch.distributed (NCCL on GPU, gloo on CPU), and each runs `train_process` — the very
function a single-process run calls. Works on an in-process Ray or a cluster (`ray_address`).

On a cluster, the output directory must be on a filesystem every node sees (rank 0 writes checkpoints;
every rank reads them on resume) and the shards must be readable from every node.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .config import TrainConfig

logger = logging.getLogger(__name__)


def _worker_loop(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    from .distributed import DistContext
    from .runner import train_process

    context = ray.train.get_context()
    logging.basicConfig(level=logging.INFO, format=f"[rank {context.get_world_rank()}] %(levelname)s %(name)s: %(message)s")
    dist = DistContext(rank=context.get_world_rank(), world_size=context.get_world_size(),
                       device=ray.train.torch.get_device())
    result = train_process(loop_config["kind"], loop_config["config"], dist, loop_config.get("resume"))
    # Every worker reports (Ray Train V2 synchronises on it); the run's metrics are rank 0's.
    ray.train.report({"step": result.step, "final_loss": result.losses[-1] if result.losses else float("nan"),
                      "samples_per_s": result.samples_per_s, "model_dir": result.model_dir or "",
                      "checkpoint": result.checkpoint or ""})


def train_with_ray(kind: str, config: TrainConfig, num_workers: int, use_gpu: bool, ray_address: str | None = None,
                   resume: str | None = None, cpus_per_worker: float = 1.0) -> dict:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not ray.is_initialized():  # embedded: loopback only, a fresh token (vidrd_common.ray_session); or join
        from vidrd_common.ray_session import init_ray

        init_ray(ray_address, object_store_mb=None, log_to_driver=True)
    output_dir = Path(config.run.output_dir).resolve()
    config.run.output_dir = str(output_dir)  # workers may run elsewhere: no relative paths
    data = config.to_dict()
    from ..data.shard_spec import training_shards
    data["data"]["shards"] = training_shards(data["data"]["shards"])  # resolved once: one list for all ranks
    if data["model"]["pretrained"] and os.path.isdir(data["model"]["pretrained"]):
        data["model"]["pretrained"] = os.path.abspath(data["model"]["pretrained"])
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"kind": kind, "config": data, "resume": resume},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker, **({"GPU": 1} if use_gpu else {})}),
        run_config=RunConfig(name=f"vidrd-{kind}", storage_path=str(output_dir / "ray"),
                             worker_runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                                              if k.startswith(("HF_", "TRANSFORMERS_"))}}),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    logger.info("Ray Train run finished: %s", result.metrics)
    return dict(result.metrics or {})
