"""The build-wide dedup index: one named Ray actor that every worker claims against.

What "first" means. The index holds first occurrences only; a later claim of the same content is told whose
it is. Within a batch, claims go in key order (deterministic for a partition). Across partitions and sources,
the first to CLAIM wins: under parallelism that is the order in which tasks reach the dedup stage, which can
differ between runs (the kept copy is always one of the duplicates, and `duplicate_of` always names a sample
that is committed or about to be). Earlier builds come before this one: at start the index is seeded, in
commit order, with the fingerprints of every committed success row of this output (resume) and of the
outputs named in the stage's `against` parameter.

Lifetime. The driver creates the actor (`ensure_index`, from the stage's `on_driver` hook) so it lives as long
as the build; its name carries the Ray job id, so concurrent builds on one cluster never share one. Without
Ray (unit tests, a plain loop) the index is a process-local object under the same name.
"""

from __future__ import annotations

import json
import logging

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

    def __init__(self, max_distance: int):
        self.index = DedupIndex(max_distance)
        self.seeded: dict[str, int] = {}

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

    def claim_many(self, claims: list[tuple[str, dict]]) -> list[tuple[str, str, int] | None]:
        return [None if m is None else (m.owner, m.kind, m.distance, m.earlier) for m in self.index.claim_many(claims)]

    def info(self) -> dict:
        return {"owners": len(self.index), "seeded": self.seeded, "max_distance": self.index.max_distance}


def index_name(config_hash: str, max_distance: int) -> str:
    import ray

    job = ray.get_runtime_context().get_job_id() if ray.is_initialized() else "local"
    return f"vidrd_dedup_{job}_{config_hash or 'nohash'}_{max_distance}"


def ensure_index(config_hash: str, max_distance: int, own: list[str], against: list[str]):
    """Get or create the index (an actor handle under Ray, else the in-process holder)."""
    import ray

    name = index_name(config_hash, max_distance)
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
    actor = actor_cls.options(name=name, get_if_exists=True, num_cpus=0, max_concurrency=1, max_restarts=0,
                              scheduling_strategy=here).remote(max_distance)
    ray.get(actor.seed.remote(own, against))
    return actor


def claim(index, claims: list[tuple[str, dict]]) -> list[Match | None]:
    if isinstance(index, IndexHolder):
        raw = index.claim_many(claims)
    else:
        import ray

        raw = ray.get(index.claim_many.remote(claims))
    return [None if r is None else Match(*r) for r in raw]
