"""Who this process is in a run: one process (CPU or one GPU) or one Ray Train worker of many."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    def wrap(self, module: torch.nn.Module, find_unused_parameters: bool = False) -> torch.nn.Module:
        """DDP over the trainable parameters. `find_unused_parameters` for steps that skip some of them
        (one-frame clips bypass the temporal layers)."""
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids,
                                                         find_unused_parameters=find_unused_parameters)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            value = value.detach().clone()
            dist.all_reduce(value)
            value /= self.world_size
        return value

    def gather_objects(self, obj) -> list:
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def single_process_context(device: str | None = None) -> DistContext:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return DistContext(0, 1, torch.device(device))
