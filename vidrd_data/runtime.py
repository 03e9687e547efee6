"""Ray runtime: start or join Ray, and turn a recipe into a streaming Ray Data pipeline.

Consecutive CPU stages are fused into one `map_batches` task (decoded frames never leave the worker that
made them; only encoded clips reach the object store); a model stage becomes an actor pool so its model
is loaded once per actor. Each stage call is guarded per item: one bad input becomes a `failed` row.
"""

from __future__ import annotations

import logging
import os
import traceback
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidrd_data.items import Item, from_row, to_row
from vidrd_data.ray_session import init_ray  # noqa: F401 - moved; re-exported for old importers
from vidrd_data.stages.base import Resources, Stage, StageContext, get_stage, make_stage

log = logging.getLogger("vidrd_data")


def configure_data_context(max_block_mb: int = 64) -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the build shows its own bar over committed inputs
    ctx.target_max_block_size = max_block_mb * 2**20
    ctx.execution_options.preserve_order = False
    ctx.execution_options.verbose_progress = False
    # A task that still fails after its retries (a worker crash on every attempt: a decoder segfault, OOM on
    # one huge video) loses only its block (the recipe's items_per_task inputs); the sink records those
    # inputs as failed ("lost"), and `--retry-failed` reruns them.
    ctx.max_errored_blocks = -1


# ---------------------------------------------------------------------------------------------- applying stages

def apply_stage(stage: Stage, items: list[Item]) -> list[Item]:
    """Run a stage on the live items; pass terminal ones through; isolate per-item failures."""
    live = [it for it in items if it.alive]
    done = [it for it in items if not it.alive]
    if not live:
        return done
    try:
        return done + stage.process_batch(live)
    except Exception:  # noqa: BLE001 - retry one by one to find the culprit(s)
        if len(live) == 1:
            return done + [_fail(stage, live[0])]
    out = done
    for it in live:
        try:
            out.extend(stage.process_batch([it]))
        except Exception:  # noqa: BLE001
            out.append(_fail(stage, it))
    return out


def _fail(stage: Stage, item: Item) -> Item:
    import sys

    exc = sys.exc_info()[1]
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    log.debug("stage %s failed on %s:\n%s", stage.name, item.key, traceback.format_exc())
    return item.fail(stage.name, reason[:500])


def _rows_to_items(batch: dict[str, np.ndarray]) -> list[Item]:
    return [from_row({"item": b}) for b in batch["item"]]


def _items_to_batch(items: list[Item]) -> dict[str, list]:
    rows = [to_row(it) for it in items]
    return {c: [r[c] for r in rows] for c in ("key", "source", "input_id", "status", "item")}


_STAGE_CACHE: dict[int, list[Stage]] = {}


def run_cpu_stages(batch: dict[str, np.ndarray], specs: list[tuple[str, dict]], ctx: StageContext) -> dict[str, list]:
    """A Ray task body: the fused CPU stages over one batch. Stage objects are cached per worker process."""
    cache_key = hash((repr(specs), ctx.config_hash))
    stages = _STAGE_CACHE.get(cache_key)
    if stages is None:
        stages = _STAGE_CACHE[cache_key] = [make_stage(n, p, ctx) for n, p in specs]
    items = _rows_to_items(batch)
    for stage in stages:
        items = apply_stage(stage, items)
    return _items_to_batch(items)


class ModelStageActor:
    """An actor-pool member: loads the stage (and its model) once, then maps batches."""

    def __init__(self, name: str, params: dict, ctx: StageContext):
        self.stage = make_stage(name, params, ctx)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        return _items_to_batch(apply_stage(self.stage, _rows_to_items(batch)))


# ------------------------------------------------------------------------------------------------- the plan

@dataclass
class StepPlan:
    """One Ray Data operator: fused CPU stages, or a model stage's actor pool."""
    stages: list[tuple[str, dict]]
    uses_model: bool
    resources: Resources
    batch_size: int
    pool_size: int = 1

    def describe(self) -> str:
        names = " + ".join(n for n, _ in self.stages)
        r = self.resources
        where = f"{r.num_cpus:g} CPU" + (f", {r.num_gpus:g} GPU" if r.num_gpus else "")
        how = f"actor pool x{self.pool_size}" if self.uses_model else "tasks"
        batch = self.batch_size or "per block"
        return f"{names}  [{how}, {where} each, batch {batch}]"


def plan_steps(specs: list[tuple[str, dict]], ctx: StageContext, models: dict[str, dict]) -> list[StepPlan]:
    steps: list[StepPlan] = []
    for name, params in specs:
        cls = get_stage(name)
        res = cls.resources(params, ctx)
        if cls.uses_model:
            model_cfg = models.get(params.get("model", name), {})
            bs = int(params.get("batch_size", model_cfg.get("batch_size", cls.batch_size)))
            pool = int(params.get("num_actors", model_cfg.get("num_actors", 1)))
            steps.append(StepPlan([(name, params)], True, res, bs, pool))
        elif steps and not steps[-1].uses_model:
            prev = steps[-1]
            prev.stages.append((name, params))
            prev.resources = Resources(max(prev.resources.num_cpus, res.num_cpus), 0.0,
                                       max(prev.resources.memory_mb or 0, res.memory_mb or 0) or None)
        else:
            steps.append(StepPlan([(name, params)], False, res, int(params.get("batch_size", 0))))
    return steps


# Retries on system failures (worker or node died, object lost). Finite: Ray Data's default is infinite,
# and an input that kills its worker on every attempt would then hang the build.
TASK_RETRIES = int(os.environ.get("VIDRD_TASK_RETRIES", "3"))


def build_dataset(items: list[Item], steps: list[StepPlan], ctx: StageContext, items_per_task: int = 1):
    import ray.data

    rows = [to_row(it) for it in items]
    # One block = one task's worth of inputs. A Ray Data task costs tens of ms of CPU on its own, so light
    # inputs (images) share a task; but keep >= 4 blocks per CPU (when there are enough inputs) so that
    # every core stays busy to the end. Heavy inputs (videos) use items_per_task 1.
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    num_blocks = max(-(-len(rows) // items_per_task), min(len(rows), 4 * cpus), 1)
    ds = ray.data.from_items(rows, override_num_blocks=num_blocks)
    with warnings.catch_warnings():
        # max_retries / max_task_retries have no named parameter yet (Ray 2.60 deprecates the kwargs form
        # "for 2.64" without a replacement): silence that one warning, revisit on upgrade.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return _add_steps(ds, steps, ctx)


def _add_steps(ds, steps: list[StepPlan], ctx: StageContext):
    from ray.data import ActorPoolStrategy

    for step in steps:
        r = step.resources
        remote = {"num_cpus": r.num_cpus}
        if r.memory_mb:
            remote["memory"] = r.memory_mb * 2**20
        if step.uses_model:
            name, params = step.stages[0]
            ds = ds.map_batches(ModelStageActor, fn_constructor_args=(name, params, ctx), batch_size=step.batch_size,
                                compute=ActorPoolStrategy(size=step.pool_size), num_gpus=r.num_gpus or None,
                                batch_format="numpy", zero_copy_batch=False, max_restarts=-1,
                                max_task_retries=TASK_RETRIES, **remote)
        else:
            # batch_size None: the fused stages see the whole block at once (no per-row batch conversions).
            ds = ds.map_batches(run_cpu_stages, fn_args=(step.stages, ctx), batch_size=step.batch_size or None,
                                batch_format="numpy", zero_copy_batch=False, max_retries=TASK_RETRIES, **remote)
    return ds
