"""Ray runtime: a recipe as steps, the Ray task that runs them on a chunk of items, and model actor pools.

Consecutive CPU stages are fused into one step; a model stage is its own step, served by a pool of actors that
load the model once. A chunk of a partition's items runs through every step in ONE Ray task (`run_stages`):
CPU steps in the task itself (decoded frames never leave it), model steps by a call to a pool actor (the task
waits, its CPU released). Only encoded clips leave the task, to the partition's writer (never to the driver).
Each stage call is guarded per item: one bad input becomes a `failed` row.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import sys
import traceback
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vidrd_data.items import Item, from_row, to_row
from vidrd_common.ray_session import init_ray  # noqa: F401 - moved; re-exported for old importers
from vidrd_data.stages.base import Resources, Stage, StageContext, get_stage, make_stage

log = logging.getLogger("vidrd_data")

# Retries on system failures (worker or node died, object lost). Finite: an input that kills its worker on every
# attempt would otherwise hang the build.
TASK_RETRIES = int(os.environ.get("VIDRD_TASK_RETRIES", "3"))
# A model actor that dies is restarted this many times, then its stage fails (never a restart loop).
ACTOR_RESTARTS = int(os.environ.get("VIDRD_ACTOR_RESTARTS", "2"))


# ---------------------------------------------------------------------------------------------- applying stages

def _guarded(stage: Stage, items: list[Item]) -> list[Item]:
    try:  # the per-item guard (wall-clock limit, file checks) where the safety module provides one
        from vidrd_data.item_guard import guard_stage_call
    except ImportError:
        return stage.process_batch(items)
    return guard_stage_call(stage, items)


def apply_stage(stage: Stage, items: list[Item]) -> list[Item]:
    """Run a stage on the live items; pass terminal ones through; isolate per-item failures."""
    live = [it for it in items if it.alive]
    done = [it for it in items if not it.alive]
    if not live:
        return done
    try:
        return done + _guarded(stage, live)
    except Exception:  # noqa: BLE001 - retry one by one to find the culprit(s)
        if len(live) == 1:
            return done + [_fail(stage, live[0])]
    out = done
    for it in live:
        try:
            out.extend(_guarded(stage, [it]))
        except Exception:  # noqa: BLE001
            out.append(_fail(stage, it))
    return out


def _fail(stage: Stage, item: Item) -> Item:
    exc = sys.exc_info()[1]
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    log.debug("stage %s failed on %s:\n%s", stage.name, item.key, traceback.format_exc())
    return item.fail(stage.name, reason[:500])


def pack(items: list[Item]) -> list[bytes]:
    return [to_row(it)["item"] for it in items]


def unpack(blobs: list[bytes]) -> list[Item]:
    return [from_row({"item": b}) for b in blobs]


_STAGE_CACHE: dict = {}  # hash -> stages, and "build" -> the build they belong to


def _cpu_stages(specs: list[tuple[str, dict]], ctx: StageContext, build_id: str = "") -> list[Stage]:
    """Stage objects are built once per worker process and build, and reused by its later tasks of that build
    (a later build in the same Ray session gets fresh ones: stages may hold handles to that build's actors)."""
    key = hash((repr(specs), ctx.config_hash, build_id))
    if key not in _STAGE_CACHE and _STAGE_CACHE.get("build") != build_id:
        _STAGE_CACHE.clear()  # an earlier build's stages (and their models) are not needed any more
        _STAGE_CACHE["build"] = build_id
    if key not in _STAGE_CACHE:
        _STAGE_CACHE[key] = [make_stage(n, p, ctx) for n, p in specs]
    return _STAGE_CACHE[key]


def run_stages(blobs: list[bytes], steps: list["StepPlan"], ctx: StageContext, pools: dict[int, list],
               chunk_no: int, build_id: str = "", split_at_fan_out: bool = True) -> list[bytes]:
    """A Ray task body: one chunk of items through every step of the recipe; returns the terminal items.

    Where a chunk of one input fans out (a long video into its segments, a short one into its clips), the rest
    of the recipe runs on those in parallel: parts go to sibling tasks, the first stays here (intra-video
    parallelism); their items come back in the same order whatever finishes first. Scratch files its stages
    made (a long video's proxy file) are removed when it returns: its siblings have finished by then."""
    from vidrd_data import scratch

    since = scratch.mark()
    try:
        return pack(_run_steps(unpack(blobs), steps, ctx, pools, chunk_no, build_id, split_at_fan_out))
    finally:
        scratch.release(since)


def _run_steps(items: list[Item], steps: list["StepPlan"], ctx: StageContext, pools: dict[int, list],
               chunk_no: int, build_id: str, split_at_fan_out: bool) -> list[Item]:
    import ray

    arrived = sum(it.alive for it in items)
    for i, step in enumerate(steps):
        if not any(it.alive for it in items):
            break
        if not step.uses_model:
            for j, stage in enumerate(_cpu_stages(step.stages, ctx, build_id)):
                items = apply_stage(stage, items)
                # one input fanned out (a video into its clips): the chunk tasks alone would leave CPUs idle
                if split_at_fan_out and arrived == 1 and sum(it.alive for it in items) > 1 and ray.is_initialized():
                    # what is left of this step, then the later steps (model pools keep their step's place)
                    partial = j + 1 < len(step.stages)
                    rest = ([replace(step, stages=step.stages[j + 1:])] if partial else []) + steps[i + 1:]
                    if rest:
                        return _run_split(items, rest, ctx, _shift(pools, i if partial else i + 1), chunk_no, build_id)
            continue
        actors = pools[i]
        actor = actors[chunk_no % len(actors)]
        live, done = [it for it in items if it.alive], [it for it in items if not it.alive]
        kept = {it.key: set_aside_heavy(it, get_stage(step.stages[0][0]).requires) for it in live}
        bs = max(1, step.batch_size or len(live))
        refs = [actor.process.remote(pack(live[k: k + bs])) for k in range(0, len(live), bs)]
        items = done + [restore_heavy(it, kept) for blob in ray.get(refs) for it in unpack(blob)]
    return items


SPLIT_MAX_BYTES = 512 * 2**20  # items heavier than this in all stay in one task (shipping would cost more)
_SPLIT: dict[str, Any] = {}  # per worker process: "parts" (the cluster's CPUs, at least 2), "remote" (run_stages)


def _split_setup() -> dict[str, Any]:
    import ray

    if not _SPLIT:
        _SPLIT.update(parts=max(2, int(ray.cluster_resources().get("CPU", 2))), remote=ray.remote(run_stages))
    return _SPLIT


def _run_split(items: list[Item], rest: list["StepPlan"], ctx: StageContext, pools: dict[int, list],
               chunk_no: int, build_id: str) -> list[Item]:
    """`rest` on the live items in contiguous runs (`guided_bounds`), handed out in order (`RunHandout`): to this
    task and to at most cpus - 1 sibling tasks at a time (each asks for what a chunk task asks); terminal items
    first, then the runs in order."""
    import ray

    live, done = [it for it in items if it.alive], [it for it in items if not it.alive]
    split = _split_setup()
    cpus = min(len(live), split["parts"])
    if cpus < 2 or sum(_nbytes(v) for it in live for v in it.data.values()) > SPLIT_MAX_BYTES:
        return done + _run_steps(live, rest, ctx, pools, chunk_no, build_id, False)
    bounds = guided_bounds([_work_weight(it) for it in live], cpus)
    runs = [live[a:b] for a, b in zip(bounds, bounds[1:])]
    remote = split["remote"].options(max_retries=TASK_RETRIES, **task_resources(rest))

    def submit(i: int):
        return remote.remote(pack(runs[i]), rest, ctx, pools, chunk_no + i, build_id, False)

    def here(i: int) -> list[Item]:
        return _run_steps(runs[i], rest, ctx, pools, chunk_no + i, build_id, False)

    out = RunHandout(len(runs), cpus - 1, submit).run(here)
    # ray.get, not the Futures: while this task waits for its last siblings, Ray lends its CPU to other work
    fetched = iter(ray.get([r for r in out if not isinstance(r, list)]))
    return done + [it for r in out for it in (r if isinstance(r, list) else unpack(next(fetched)))]


class RunHandout:
    """Runs 0..n-1 handed out in order: the calling task takes the next one whenever it finishes one, and each of
    `slots` sibling tasks gets the next one as soon as its last one is done (a thread of ours submits it when Ray
    reports the finish: never more siblings at once than CPUs, and never a task queued behind a busy worker, which
    Ray would start an extra worker process for as soon as this task waits on a model actor)."""

    def __init__(self, n: int, slots: int, submit):
        import queue
        import threading

        self.n, self.slots, self.submit = n, slots, submit
        self.lock = threading.Lock()
        self.next = 0
        self.results: list[Any] = [None] * n  # a list of items (run here) or a sibling's ObjectRef
        self.freed: queue.SimpleQueue = queue.SimpleQueue()  # a sibling finished (None: stop)
        self.error: BaseException | None = None

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.n or self.error is not None:
                return None
            self.next += 1
            return self.next - 1

    def _send(self) -> bool:
        """The next run to a sibling task; False when none is left (or submitting failed)."""
        with self.lock:  # taken and recorded at once: once `next` reaches n, every submitted ref is in results
            if self.next >= self.n or self.error is not None:
                return False
            i = self.next
            try:
                ref = self.submit(i)
            except BaseException as err:  # noqa: BLE001 - raised in the calling task, never lost in this thread
                self.error = err
                return False
            self.next += 1
            self.results[i] = ref
        ref.future().add_done_callback(lambda _f: self.freed.put(True))  # Ray's thread: only a note, no work
        return True

    def _feed(self) -> None:
        while self.freed.get() and self._send():
            pass

    def run(self, here) -> list[Any]:
        import threading

        first = self._take()  # the first run (the largest) stays here
        for _ in range(self.slots):
            if not self._send():
                break
        feeder = threading.Thread(target=self._feed, name="vidrd-run-handout", daemon=True)
        feeder.start()
        try:
            i = first
            while i is not None:
                self.results[i] = here(i)
                i = self._take()
        finally:
            self.freed.put(None)
            feeder.join()
        if self.error is not None:
            raise self.error
        return self.results


def _work_weight(item: Item) -> float | None:
    """A fanned-out item's share of the work left: its span's seconds (cutting and encoding scale with them)."""
    try:
        start, end = item.meta["source"]["span"]
        return max(float(end) - float(start), 0.0)
    except (KeyError, TypeError, ValueError):
        return None


def guided_bounds(weights: list[float | None], cpus: int, finest: int = 8) -> list[int]:
    """Bounds of contiguous, non-empty runs of items (in order) for `cpus` CPUs, largest first: each run takes
    1/cpus of the weight still left, none less than 1/(finest * cpus) of the whole, nor than one item (guided
    self-scheduling). The first run stays in the splitting task and the others queue as tasks in this order, so
    the runs that start last are the small ones and a CPU that finishes early takes them. Cost per second of
    output varies with the content: two equal halves of bench_long_video's 3-minute source ended 0.7 s apart,
    one core idle meanwhile. Weights: the items' span seconds (`_work_weight`: whole shots of 0.2-12 s split by
    count left one half 18 % heavier); without a weight for every item (None), every item weighs the same."""
    n = len(weights)
    w = [float(x) for x in weights] if all(x is not None for x in weights) and sum(weights) > 0 else [1.0] * n
    cum = list(itertools.accumulate(w))
    total, floor = cum[-1], cum[-1] / (finest * max(1, cpus))
    bounds = [0]
    while bounds[-1] < n:
        start = bounds[-1]
        before = cum[start - 1] if start else 0.0
        target = before + max((total - before) / max(1, cpus), floor)
        i = min(bisect.bisect_left(cum, target, lo=start), n - 1)  # items [start, i] reach the target
        prev = cum[i - 1] if i > 0 else 0.0
        b = i + 1 if cum[i] - target <= target - prev else i  # the nearer of the two cuts
        bounds.append(max(start + 1, min(b, n)))
    return bounds


def _shift(pools: dict[int, list], start: int) -> dict[int, list]:
    return {i - start: actors for i, actors in pools.items() if i >= start}


HEAVY_BYTES = 256 * 2**10  # data values at least this large travel to a model actor only if its stage reads them


def _nbytes(v: Any, depth: int = 0) -> int:
    if isinstance(v, np.ndarray):
        return v.nbytes
    if isinstance(v, (bytes, bytearray)):
        return len(v)
    if depth < 2 and isinstance(v, dict):
        return sum(_nbytes(x, depth + 1) for x in v.values())
    if depth < 2 and isinstance(v, (list, tuple)) and v and isinstance(v[0], (np.ndarray, bytes)):
        return sum(_nbytes(x, depth + 1) for x in v)
    return 0


def set_aside_heavy(item: Item, requires: tuple) -> dict[str, Any]:
    """Take out of `item.data` the large values the model stage does not read (a long video's decoded proxy,
    a clip's full frames when the captioner reads its keyframes): they stay in this task instead of making a
    round trip through the object store. Of a group of alternatives, only the first present one is read."""
    wanted = set()
    for req in requires:
        present = [g for g in (req if isinstance(req, tuple) else (req,)) if g in item.data]
        wanted.update(present[:1])
    heavy = [k for k, v in item.data.items() if k not in wanted and _nbytes(v) >= HEAVY_BYTES]
    return {k: item.data.pop(k) for k in heavy}


def restore_heavy(item: Item, kept: dict[str, dict[str, Any]]) -> Item:
    """Give an item back what `set_aside_heavy` took, unless the stage ended it (filtered/failed: no data)."""
    aside = kept.get(item.key)
    if aside and item.alive:
        for k, v in aside.items():
            item.data.setdefault(k, v)
    return item


class ModelStageActor:
    """A pool member: loads the stage (and its model) once, then maps batches of packed items."""

    def __init__(self, name: str, params: dict, ctx: StageContext):
        self.stage = make_stage(name, params, ctx)

    def ready(self) -> bool:
        return True

    def process(self, blobs: list[bytes]) -> list[bytes]:
        return pack(apply_stage(self.stage, unpack(blobs)))


class ModelStageFailed(RuntimeError):
    """A model stage's actors could not start: the build stops before more work, with the actor's own error."""


def start_pools(steps: list["StepPlan"], ctx: StageContext, timeout_s: float | None = None) -> dict[int, list]:
    """Actor pools for the model steps, each actor checked alive (its model loaded) before any work is sent."""
    pools: dict[int, list] = {}
    try:
        for i, step in enumerate(steps):
            if step.uses_model:
                pools[i] = launch_pool(step, ctx)
        await_pools(pools, steps, timeout_s)
    except BaseException:
        stop_pools(pools)
        raise
    return pools


def launch_pool(step: "StepPlan", ctx: StageContext) -> list:
    """A model step's actors, created without waiting for them (their models load in the background)."""
    import ray

    name, params = step.stages[0]
    r = step.resources
    opts: dict[str, Any] = {"num_cpus": r.num_cpus, "num_gpus": r.num_gpus or 0,
                            "max_restarts": ACTOR_RESTARTS, "max_task_retries": TASK_RETRIES}
    if r.memory_mb:
        opts["memory"] = r.memory_mb * 2**20
    cls = ray.remote(ModelStageActor)
    return [cls.options(**opts).remote(name, params, ctx) for _ in range(step.pool_size)]


def await_pools(pools: dict[int, list], steps: list["StepPlan"], timeout_s: float | None = None) -> None:
    """Block until every actor of `pools` has its model loaded; a failed one raises with its own error."""
    import ray

    for i, actors in pools.items():
        try:
            ray.get([a.ready.remote() for a in actors], timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - the actor's own error, as Ray reports it
            raise ModelStageFailed(f"model stage {steps[i].stages[0][0]}: its actor could not start: "
                                   f"{_root_cause(exc)}") from None


def _root_cause(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # Ray wraps the constructor's exception in a traceback; its last line is the error itself.
    errs = [ln.strip() for ln in lines if ("Error" in ln or "Exception" in ln) and not ln.startswith(" ")]
    return (errs[-1] if errs else (lines[-1] if lines else type(exc).__name__))[:800]


def stop_pools(pools: dict[int, list]) -> None:
    import ray

    for actors in pools.values():
        for a in actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


# ------------------------------------------------------------------------------------------------- the plan

@dataclass
class StepPlan:
    """One step: fused CPU stages (run in the chunk's task), or a model stage's actor pool."""
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
        batch = self.batch_size or "per chunk"
        return f"{names}  [{how}, {where} each, batch {batch}]"


def plan_steps(specs: list[tuple[str, dict]], ctx: StageContext, models: dict[str, dict]) -> list[StepPlan]:
    steps: list[StepPlan] = []
    for name, params in specs:
        cls = get_stage(name)
        if not getattr(cls, "active", lambda p, c: True)(params, ctx):
            continue  # switched off (e.g. its model is not configured): no task, no actor pool
        res = cls.resources(params, ctx)
        if cls.uses_model:
            model_cfg = models.get(params.get("model", name), {})
            bs = int(params.get("batch_size", model_cfg.get("batch_size", cls.batch_size)))
            pool = int(params.get("num_actors", model_cfg.get("num_actors", 1)))
            steps.append(StepPlan([(name, params)], True, res, bs, pool))
        elif steps and not steps[-1].uses_model:
            prev = steps[-1]
            prev.stages.append((name, params))
            prev.resources = Resources(max(prev.resources.num_cpus, res.num_cpus),
                                       max(prev.resources.num_gpus, res.num_gpus),
                                       max(prev.resources.memory_mb or 0, res.memory_mb or 0) or None)
        else:
            steps.append(StepPlan([(name, params)], False, res, int(params.get("batch_size", 0))))
    return steps


def task_resources(steps: list[StepPlan]) -> dict[str, Any]:
    """What a chunk task asks Ray for: the largest CPU step (model steps run in their actors)."""
    cpu = [s.resources for s in steps if not s.uses_model] or [Resources()]
    out: dict[str, Any] = {"num_cpus": max(r.num_cpus for r in cpu)}
    gpus = max(r.num_gpus for r in cpu)
    if gpus:
        out["num_gpus"] = gpus
    mem = max((r.memory_mb or 0) for r in cpu)
    if mem:
        out["memory"] = mem * 2**20
    return out
