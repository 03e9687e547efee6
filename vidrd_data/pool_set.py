"""The model-stage actor pools of a whole build.

Three things the per-source start (create, wait, run, kill; source after source) paid for in the demo,
measured: 6.8-8.3 s of model loading per source with the CPUs idle, three times over, and three copies of
the same CLIP loaded one after another. Here
- a source's pools load while its first partition's CPU stages run (its writers never commit before the
  pools are confirmed loaded, so a model that cannot load still fails the build without a shard);
- the next source's pools start loading as soon as the current source's are up (those that reserve no CPU:
  an actor placed early must never take a CPU the running source's tasks wait for);
- sources that run the same model stage with the same settings share one pool, kept until the last of them.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from vidrd_data.runtime import StepPlan, StageContext, await_pools, launch_pool, stop_pools


def pool_signature(step: StepPlan) -> str:
    """Equal for steps whose actors are interchangeable: same stage, parameters, resources and pool size."""
    return json.dumps([step.stages, asdict(step.resources), step.pool_size], sort_keys=True, default=str)


class PoolSet:
    def __init__(self, step_lists: list[list[StepPlan]], ctx: StageContext):
        self.step_lists, self.ctx = step_lists, ctx
        self.live: dict[str, list] = {}  # signature -> actors

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
                self.live[sig] = launch_pool(step, self.ctx)

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
            stop_pools({0: self.live.pop(sig)})

    def close(self) -> None:
        stop_pools(dict(enumerate(self.live.values())))
        self.live.clear()
