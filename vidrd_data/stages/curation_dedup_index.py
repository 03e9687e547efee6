"""The build-wide dedup index: one named Ray actor that every worker asks, with ordered, deterministic verdicts.

What "first" means: the first in BUILD ORDER (sources in manifest order, a source's partitions in index order,
a partition's samples in the order its writer emits them), never the first to arrive. A build's output is
then the same on every run, embedded or on a cluster, whatever the scheduling:
- the `dedup` stage (in the chunk tasks) only PROBES: an exact match with an owner already final is a
  duplicate of that owner whatever arrives later (the first owner of a content hash never changes), so it is
  filtered there, before encode;
- every other sample is encoded and written, and its fingerprint goes back to its partition's writer, which
  CLOSES the partition with them (`close`) before committing; the index finalises partitions strictly in
  order (a partition waits for every earlier partition the driver registered, `expect`) and answers each
  writer with its verdicts; a late duplicate is dropped from the uncommitted tar and its row says so.
Earlier builds come before this one: at start the index is seeded, in commit order, with the fingerprints of
every committed success row of this output (resume) and of the outputs named in the stage's `against`.

Lifetime. The driver creates the actor (`ensure_index`, from the stage's `on_driver` hook) under a name that
carries the build's run id, and kills it when the build ends (`release_driver_indexes`): two builds never
share one, even in one Ray job. Without Ray (unit tests, a plain loop) the index is a process-local object.
"""

from __future__ import annotations

import logging
import time

from vidrd_data.curation.index import Match
from vidrd_data.curation.index_holder import IndexHolder, SourceOrder, committed_fingerprints  # noqa: F401

log = logging.getLogger("vidrd_data")
_LOCAL: dict[str, "IndexHolder"] = {}


def index_name(run_id: str, max_distance: int) -> str:
    return f"vidrd_dedup_{run_id or 'local'}_{max_distance}"


_DRIVER: dict[str, object] = {}  # name -> handle of the indexes this process (the driver) created


def ensure_index(run_id: str, max_distance: int, own: list[str], against: list[str], *, driver: bool = False):
    """Get or create the index (an actor handle under Ray, else the in-process holder)."""
    import ray

    name = index_name(run_id, max_distance)
    if not ray.is_initialized():
        holder = _LOCAL.setdefault(name, IndexHolder(max_distance))
        holder.seed(own, against)
        return holder
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_cls = ray.remote(IndexHolder)
    # num_cpus 0: a bookkeeping actor must never take a core from the stages; one at a time: claims serialise.
    # Pinned to the node that creates it (the driver's: `Dedup.on_driver`), so losing a worker node never loses
    # the index; if the driver's node goes, the build goes with it anyway.
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    opts = dict(name=name, get_if_exists=True, num_cpus=0, max_concurrency=1, max_restarts=0,
                scheduling_strategy=here)
    if driver:  # not awaited: the actor starts while the first partitions run (`driver_indexes_ready` checks it);
        # the first handle owns the actor (a non-detached actor dies with its owner's handles): keep it
        return _DRIVER.setdefault(name, actor_cls.options(**opts).remote(max_distance, own, against))
    actor = actor_cls.options(**opts).remote(max_distance)
    ray.get(actor.seed.remote(own, against))
    return actor


def driver_indexes_ready() -> None:
    """Driver: block until this build's indexes are up and seeded; raises with the index's own error."""
    import ray

    if _DRIVER:
        ray.get([a.ready.remote() for a in _DRIVER.values()])


def find_index(name: str):
    """The index by name, for a writer: the actor (Ray) or the in-process holder; None if there is none."""
    import ray

    if not ray.is_initialized():
        return _LOCAL.get(name)
    try:
        return ray.get_actor(name)
    except ValueError:
        return None


def _call(index, method: str, *args):
    if isinstance(index, IndexHolder):
        return getattr(index, method)(*args)
    import ray

    return ray.get(getattr(index, method).remote(*args))


def _driver_indexes() -> list:
    return list(_DRIVER.values()) or list(_LOCAL.values())


def expect_partition(source: str, partition: int) -> list:
    """Driver: register a partition before submitting it (its writer's verdicts come in this order). Under Ray
    the calls are not awaited: the writer waits for the returned refs before it closes the partition (calls from
    two callers are not ordered otherwise), so the driver never waits for the index to start."""
    refs = []
    for index in _driver_indexes():
        if isinstance(index, IndexHolder):
            index.expect(source, partition)
        else:
            refs.append(index.expect.remote(source, partition))
    return refs


def close_partition(source: str, partition: int) -> None:
    """Driver: a partition whose writer failed on every attempt holds no claims; later ones may go on."""
    for index in _driver_indexes():
        _call(index, "close", source, partition, [])


def release_driver_indexes() -> None:
    """Driver, at the end of a build: the indexes die with it."""
    import ray

    for name, actor in list(_DRIVER.items()):
        try:
            ray.kill(actor)
        except Exception:  # noqa: BLE001 - already gone with its node
            pass
        _DRIVER.pop(name, None)
    _LOCAL.clear()


def recipe_indexes(steps, run_id: str) -> list[str]:
    """Names of the dedup indexes a source's steps claim in (one per enabled `dedup` stage setting)."""
    from vidrd_data.stages.curation_dedup import Dedup

    names = []
    for step in steps:
        for stage, params in step.stages:
            if stage == "dedup" and params.get("enabled", True):
                names.append(index_name(run_id, Dedup.Params.model_validate(params).max_distance))
    return sorted(set(names))


def partition_verdicts(name: str, source: str, partition: int, claims: list[tuple[str, dict]],
                       poll_s: float = 0.02) -> list[Match | None]:
    """Writer: close the partition with its claims and wait for its verdicts (earlier partitions first)."""
    index = find_index(name)
    if index is None and not claims:
        return []
    if index is None:
        raise RuntimeError(f"dedup index {name} is gone (its build ended or its node was lost)")
    _call(index, "close", source, partition, claims)
    if not claims:
        return []  # nothing to wait for: closing lets later partitions go on
    while (raw := _call(index, "verdicts", source, partition)) is None:
        time.sleep(poll_s)
        poll_s = min(0.5, poll_s * 1.5)
    return [None if r is None else Match(*r) for r in raw]


def probe(index, claims: list[tuple[str, dict]]) -> list[Match | None]:
    return [None if r is None else Match(*r) for r in _call(index, "probe_many", claims)]
