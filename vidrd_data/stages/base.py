"""Stage contract: a small unit that maps a batch of items to items.

A stage is a class registered under a name (the name used in recipes) that declares, at class level:
- `Params`: a pydantic model of its parameters (unknown names and bad values fail before any work);
- `requires` / `provides`: the item keys it reads and sets (`item.data` keys; `meta.<name>` for item.meta
  entries; a tuple inside `requires` means any one of those keys), so a recipe's chain is checked before
  any work (vidrd_data.plan_check);
- `resources()`: what one worker asks Ray for; `check()`: checks that need the build context (a model
  that must exist, the clip spec).
It is built once per worker (a Ray task for CPU stages, an actor for model stages) by `make_stage`, which
calls `setup()`: model stages load their model there, once per worker. It never touches the output's
filesystem. Per-item errors are the runtime's business: it calls `process_batch`, and if that raises,
retries the items one by one and marks the ones that still raise as failed with the stage name and the
error, so one bad input never stops the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    run_id: str = ""  # one per build run: build-scoped shared state (dedup's index) is named by it

    def clip_size(self) -> tuple[int, int]:
        """(width, height) of the output clips."""
        w, h = self.clip["size"]
        return int(w), int(h)

    def clip_length_bounds(self) -> tuple[float, float | None]:
        """(shortest, longest) clip length in seconds that the clip spec accepts (longest None: no cap)."""
        fps = float(self.clip["fps"])
        if self.clip.get("frames"):
            return int(self.clip["frames"]) / fps, None
        return float(self.clip.get("min_seconds") or 0.0), self.clip.get("max_seconds")


class StageParams(BaseModel):
    """Parameters every stage accepts; a stage's `Params` subclasses this (unknown names fail)."""
    model_config = ConfigDict(extra="forbid")
    batch_size: int | None = Field(None, ge=1)  # items per call (read by the runtime)
    # wall-clock limit per item of one call (vidrd_data.item_guard; default DEFAULT_ITEM_TIMEOUT_S, 900 s)
    item_timeout_s: float | None = Field(None, gt=0)


class ModelStageParams(StageParams):
    """What every model stage accepts on top: overrides of its `models.<key>` block (models.service)."""
    num_actors: int | None = Field(None, ge=1)  # actor pool size
    device: Literal["auto", "cpu", "cuda"] | None = None  # default: the manifest's models.<key>.device
    dtype: Literal["auto", "float32", "float16", "bfloat16"] | None = None  # auto: float16 on CUDA, else float32


class GenerationParams(ModelStageParams):
    """What every captioning stage accepts on top: keyframes and text-generation settings (None: the model's own)."""
    keyframes: int | None = Field(None, ge=1)  # at most this many of the clip's keyframes
    max_new_tokens: int | None = Field(None, ge=1)
    min_new_tokens: int | None = Field(None, ge=0)
    num_beams: int | None = Field(None, ge=1)
    repetition_penalty: float | None = Field(None, gt=0)
    no_repeat_ngram_size: int | None = Field(None, ge=0)


class Stage:
    name: ClassVar[str] = "stage"
    uses_model: ClassVar[bool] = False  # True: runs in a Ray actor pool, loads its model in setup()
    waits_on_tasks: ClassVar[bool] = False  # True: its chunk task waits on Ray tasks it starts (CPU handed back)
    batch_size: ClassVar[int] = 1
    Params: ClassVar[type[StageParams]] = StageParams
    requires: ClassVar[tuple[str | tuple[str, ...], ...]] = ()  # item keys read; a tuple: any one of them
    provides: ClassVar[tuple[str, ...]] = ()  # item keys set

    def __init__(self, params: dict[str, Any], ctx: StageContext):
        self.config = self.Params.model_validate(params)
        # bodies read a plain dict: the validated values, with the declared defaults filled in
        self.params = self.config.model_dump(exclude_none=True)
        self.ctx = ctx

    def setup(self) -> None:
        """Load models and other per-worker state (called once per worker, after construction)."""

    @classmethod
    def validate(cls, params: dict[str, Any], ctx: StageContext) -> StageParams:
        """Every up-front check of one stage's parameters: the schema, then `check` (context, models)."""
        typed = cls.Params.model_validate(params)
        cls.check(params, ctx)
        return typed

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        return Resources()

    @classmethod
    def derived_params(cls, params: dict[str, Any], recipe: dict[str, dict[str, Any]], clip: dict[str, Any]
                       ) -> dict[str, Any]:
        """Defaults this stage takes from the other stages of its recipe (`recipe`: stage name -> params, overrides
        merged) and the clip spec, set when the manifest is resolved; a value the recipe or manifest gives wins."""
        return {}

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        """Up-front checks that need the context (before any work): raise ValueError / FileNotFoundError."""

    def process(self, item: Item) -> list[Item]:
        """One live item in, zero or more items out (return [item] to keep it)."""
        raise NotImplementedError

    def process_batch(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for item in items:
            out.extend(self.process(item))
        return out


def make_stage(name: str, params: dict[str, Any], ctx: StageContext) -> Stage:
    """The stage as a worker runs it: built from its params, then set up (models loaded) once."""
    stage = get_stage(name)(params, ctx)
    stage.setup()
    return stage
