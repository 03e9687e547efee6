"""Stage contract: a small unit that maps a batch of items to items.

A stage is a class registered under a name (the name used in `pipelines/*.yaml`). It is constructed once
per worker (a Ray task for CPU stages, an actor for model stages, which load their model in `__init__`)
with its parameters and the build context, and then called on batches. It never touches the output's
filesystem (only the sink writes). Per-item errors are the runtime's business: it calls `process_batch`,
and if that raises, retries the items one by one and marks the ones that still raise as failed with the
stage name and the error, so one bad input never stops the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from vidrd_data.items import Item

STAGES: dict[str, type["Stage"]] = {}


def register_stage(name: str):
    def deco(cls: type[Stage]) -> type[Stage]:
        cls.name = name
        STAGES[name] = cls
        return cls
    return deco


def get_stage(name: str) -> type["Stage"]:
    import vidrd_data.stages  # noqa: F401  (registers the built-in stages)
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; known stages: {', '.join(sorted(STAGES))}")
    return STAGES[name]


@dataclass(frozen=True)
class Resources:
    """What one worker of the stage asks Ray for."""
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int | None = None


@dataclass
class StageContext:
    """What every stage may read: the resolved clip spec, model settings and where the manifest lives."""
    clip: dict[str, Any]  # fps, size [w, h], frames | min_seconds/max_seconds
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_dir: str = "."  # relative input paths resolve against the manifest's folder
    config_hash: str = ""
    package_version: str = ""


class Stage:
    name: ClassVar[str] = "stage"
    uses_model: ClassVar[bool] = False  # True: runs in a Ray actor pool, loads its model once per actor
    batch_size: ClassVar[int] = 1
    PARAMS: ClassVar[tuple[str, ...] | None] = None  # the parameters it accepts (None: not checked)

    def __init__(self, params: dict[str, Any], ctx: StageContext):
        self.params = dict(params)
        self.ctx = ctx

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        return Resources()

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """A misspelt parameter in a recipe or override fails up front, listing what the stage accepts."""
        if cls.PARAMS is None:
            return
        unknown = set(params) - set(cls.PARAMS)
        if unknown:
            raise ValueError(f"{cls.name}: unknown params {sorted(unknown)}; allowed: {list(cls.PARAMS)}")

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        """Up-front validation (before any work): raise ValueError naming the bad parameter / missing model."""

    def process(self, item: Item) -> list[Item]:
        """One live item in, zero or more items out (return [item] to keep it)."""
        raise NotImplementedError

    def process_batch(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for item in items:
            out.extend(self.process(item))
        return out
