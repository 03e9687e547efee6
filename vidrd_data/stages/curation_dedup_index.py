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

import json
import logging
import time
from dataclasses import dataclass, field

from vidrd_data.curation.index import DedupIndex, Match

log = logging.getLogger("vidrd_data")
_LOCAL: dict[str, "IndexHolder"] = {}


def committed_fingerprints(output: str) -> list[tuple[str, dict]]:
    """(key, fingerprint) of every committed success row of `output` that recorded one, in commit order."""
    from vidrd_data.sink import read_status

    rows = read_status(output)
    found = []
    for key, status, metadata in zip(rows.get("key", []), rows.get("status", []), rows.get("metadata", [])):
        if status != "success" or not metadata:
            continue
        details = json.loads(metadata).get("details")
        fp = (json.loads(details) if details else {}).get("dedup")
        if fp and fp.get("exact"):
            found.append((key, fp))
    return found


class IndexHolder:
    """The index plus its seeding; runs as the named actor or in-process."""

    def __init__(self, max_distance: int, own: list[str] = (), against: list[str] = ()):
        self.index = DedupIndex(max_distance)
        self.seeded: dict[str, int] = {}
        self.parts: dict[str, SourceOrder] = {}
        # seeded before any other call can reach it (an actor runs its constructor first); a seed error fails
        # the actor's creation, and every later call (the driver's readiness check first) reports it
        self.seed(list(own), list(against))

    def ready(self) -> dict[str, int]:
        return dict(self.seeded)

    def seed(self, own: list[str], against: list[str]) -> dict[str, int]:
        """Add committed samples of outputs not seeded yet (each source's `against` may name others).
        This output's own samples (a resumed build) stay owners if claimed again under their key; earlier
        builds' samples: a claim, even under the same key, is a copy of what they already hold."""
        for outputs, foreign in ((own, False), (against, True)):
            for out in outputs:
                if out in self.seeded:
                    continue
                try:
                    entries = committed_fingerprints(out)
                except FileNotFoundError:
                    entries = []
                for key, fp in entries:
                    self.index.add(key, fp, foreign=foreign)
                self.seeded[out] = len(entries)
        return dict(self.seeded)

    def claim_many(self, claims: list[tuple[str, dict]]) -> list[tuple[str, str, int, bool] | None]:
        return [_raw(m) for m in self.index.claim_many(claims)]

    def probe_many(self, claims: list[tuple[str, dict]]) -> list[tuple[str, str, int, bool] | None]:
        """Matches with owners already final (nothing is added)."""
        return [None if k in self.index.owners and k not in self.index.foreign else _raw(self.index.lookup(fp))
                for k, fp in claims]

    def _order(self, source: str) -> "SourceOrder":
        return self.parts.setdefault(source, SourceOrder())

    def expect(self, source: str, partition: int) -> None:
        """The driver submitted this partition: later partitions wait for it to close."""
        self._order(source).expected.add(partition)

    def close(self, source: str, partition: int, claims: list[tuple[str, dict]]) -> None:
        """A partition's writer hands in the fingerprints of its samples, in emit order; finalise what can be."""
        order = self._order(source)
        if partition in order.final:  # a retried writer (or a lost partition closed twice): claims are idempotent
            if claims:
                order.verdicts[partition] = self.claim_many(claims)
            return
        order.closed[partition] = claims
        for p in sorted(order.expected | set(order.closed)):
            if p in order.final:
                continue
            if p not in order.closed:
                break  # an earlier partition is still running: later ones wait for it
            done = self.claim_many(order.closed.pop(p))
            if done:
                order.verdicts[p] = done
            order.final.add(p)

    def verdicts(self, source: str, partition: int) -> list | None:
        """The partition's verdicts once final (handed out once), else None: the writer asks again."""
        order = self._order(source)
        return order.verdicts.pop(partition, []) if partition in order.final else None

    def info(self) -> dict:
        return {"owners": len(self.index), "seeded": self.seeded, "max_distance": self.index.max_distance}


@dataclass
class SourceOrder:
    """One source's partitions on their way to final verdicts."""
    expected: set[int] = field(default_factory=set)
    closed: dict[int, list] = field(default_factory=dict)
    final: set[int] = field(default_factory=set)
    verdicts: dict[int, list] = field(default_factory=dict)


def _raw(m: Match | None) -> tuple[str, str, int, bool] | None:
    return None if m is None else (m.owner, m.kind, m.distance, m.earlier)


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
