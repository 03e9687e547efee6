"""The build-wide dedup index's holder: what the named Ray actor runs (or a plain loop in-process).

Kept out of `vidrd_data.stages` (whose package import loads every stage, pandas among them: ~1 CPU-s): each
build starts this actor in a fresh worker process, and the build's first shard waits for it to be up.
The protocol (probe, expect, close, verdicts) is described in `vidrd_data.stages.curation_dedup_index`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vidrd_data.curation.index import DedupIndex, Match


def committed_fingerprints(output: str) -> list[tuple[str, dict]]:
    """(key, fingerprint) of every committed success row of `output` that recorded one, in commit order."""
    from vidrd_format.shards import committed_shards

    if not committed_shards(output):  # a fresh output: no need to import pandas (read_status) to learn that
        return []
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
