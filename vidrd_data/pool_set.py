"""The model-stage actor pools of a whole build.

Three things the per-source start (create, wait, run, kill; source after source) paid for in the demo,
measured: 6.8-8.3 s of model loading per source with the CPUs idle, three times over, and three copies of
the same CLIP loaded one after another. Here
- a source's pools load while its first partition's CPU stages run (its writers never commit before the
  pools are confirmed loaded, so a model that cannot load still fails the build without a shard);
- the next source's pools start loading as soon as the current source's are up (those that reserve no CPU:
  an actor placed early must never take a CPU the running source's tasks wait for);
- sources that run the same model stage with the same settings share one pool, kept until the last of them;
- with `keep_models` (a Python caller running build after build, e.g. a service feeding batches), the pools
  stay loaded when the build ends and the next build in this process with the same model settings takes
  them over instead of loading again (`release_kept_models()` stops them; they hold their CPU/GPU
  reservations and memory until then).
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, replace

from vidrd_data.runtime import StepPlan, StageContext, await_pools, launch_pool, stop_pools

_KEPT: dict[str, tuple[str, list]] = {}  # kept_key -> (Ray job id, actors): pools loaded, between builds
_KEPT_LOCK = threading.Lock()


def pool_signature(step: StepPlan) -> str:
    """Equal for steps whose actors are interchangeable: same stage, parameters, resources and pool size."""
    return json.dumps([step.stages, asdict(step.resources), step.pool_size], sort_keys=True, default=str)


def kept_key(step: StepPlan, ctx: StageContext) -> str:
    """Equal for pools a later build may take over: the pool's signature and everything its actors were built
    from (clip spec, model settings, base folder), but not the per-build identifiers."""
    return json.dumps([pool_signature(step), asdict(replace(ctx, run_id="", config_hash=""))], sort_keys=True,
                      default=str)


def _job_id() -> str:
    import ray

    return ray.get_runtime_context().get_job_id()


def _take_kept(key: str) -> list | None:
    with _KEPT_LOCK:
        job, actors = _KEPT.pop(key, (None, None))
    return actors if actors is not None and job == _job_id() else None  # a restarted Ray: stale handles


def release_kept_models() -> int:
    """Stop every pool kept loaded by `build(..., keep_models=True)`; returns how many pools it stopped."""
    with _KEPT_LOCK:
        kept = [actors for _, actors in _KEPT.values()]
        _KEPT.clear()
    try:
        stop_pools(dict(enumerate(kept)))
    except Exception:  # noqa: BLE001 - Ray already shut down: the actors went with it
        pass
    return len(kept)


class PoolSet:
    def __init__(self, step_lists: list[list[StepPlan]], ctx: StageContext, keep: bool = False):
        self.step_lists, self.ctx, self.keep = step_lists, ctx, keep
        self.live: dict[str, list] = {}  # signature -> actors
        self.keys: dict[str, str] = {}  # signature -> kept_key

    def _model_steps(self, source_no: int) -> dict[int, StepPlan]:
        if not 0 <= source_no < len(self.step_lists):
            return {}
        return {i: s for i, s in enumerate(self.step_lists[source_no]) if s.uses_model}

    def launch(self, source_no: int, ahead: bool = False) -> None:
        """Create the source's actors that are not up yet (non-blocking). `ahead` (the source is not running
        yet): only actors that reserve no CPU, so that early actors never take the CPUs the running source's
        tasks need (GPU actors just wait for a GPU the running source still holds)."""
        for step in self._model_steps(source_no).values():
            sig = pool_signature(step)
            if ahead and step.resources.num_cpus:
                continue
            if sig not in self.live:
                self.keys[sig] = key = kept_key(step, self.ctx)
                self.live[sig] = _take_kept(key) or launch_pool(step, self.ctx)

    def pools(self, source_no: int) -> dict[int, list]:
        """{step index: actors} for the source's model steps (launching what is missing)."""
        self.launch(source_no)
        return {i: self.live[pool_signature(s)] for i, s in self._model_steps(source_no).items()}

    def wait(self, source_no: int) -> None:
        """Block until the source's models are loaded; raises ModelStageFailed with the actor's own error."""
        await_pools(self.pools(source_no), self.step_lists[source_no])

    def release(self, source_no: int) -> None:
        """Stop the pools no source after `source_no` uses."""
        later = {pool_signature(s) for n in range(source_no + 1, len(self.step_lists))
                 for s in self._model_steps(n).values()}
        for sig in [s for s in self.live if s not in later]:
            self._stop(sig)

    def close(self, succeeded: bool = True) -> None:
        """Stop (or keep, after a build that succeeded) every pool still up."""
        for sig in list(self.live):
            self._stop(sig, keep=succeeded)

    def _stop(self, sig: str, keep: bool = True) -> None:
        actors = self.live.pop(sig)
        if self.keep and keep:
            with _KEPT_LOCK:
                old = _KEPT.pop(self.keys[sig], None)
                _KEPT[self.keys[sig]] = (_job_id(), actors)
            if old is not None and old[1] is not actors:  # another build kept an equal pool: one is enough
                stop_pools({0: old[1]})
        else:
            stop_pools({0: actors})
