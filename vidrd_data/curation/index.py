"""A near-duplicate index over fingerprints (see hashes.py) with first-occurrence semantics.

Exact matches are a dict lookup on the content hash. Near matches use a blocked LSH on the first keyframe
hash that a fingerprint's lookup is anchored on (the middle one for clips): the 64 bits are cut into 4 blocks
of 16; each block value, and its 16 one-bit neighbours, address a bucket. Two hashes within 7 bits differ in
at most 1 bit in some block (pigeonhole), so every pair within `max_distance` <= 7 is found, with 68 bucket
probes per lookup and buckets of about N / 65536 entries: it scales to tens of millions of clips.
A candidate is a duplicate when EVERY keyframe hash is within `max_distance` bits of its counterpart.

Only first occurrences enter the index (a duplicate never becomes an anchor), so `duplicate_of` always names
a kept sample. Claiming is idempotent per key: a retried task that claims again is told it is the owner.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from vidrd_data.curation.hash_bits import KEYFRAME_POSITIONS, hamming

BLOCKS, BLOCK_BITS = 4, 16
MAX_SUPPORTED_DISTANCE = BLOCKS * 2 - 1  # 7: the radius the one-bit probing guarantees


@dataclass(frozen=True)
class Match:
    owner: str  # key of the first occurrence
    kind: str  # "exact" | "near"
    distance: int  # worst keyframe Hamming distance (0 for exact)
    earlier: bool = False  # the owner is in an earlier build (the stage's `against` outputs)

    def reason(self) -> str:
        how = "exact" if self.kind == "exact" else f"near, {self.distance} bits"
        return f"duplicate_of={self.owner} ({how}{', earlier build' if self.earlier else ''})"


def _anchor(hashes: list[int]) -> int:
    return hashes[len(hashes) // 2]


def _blocks(h: int) -> list[int]:
    mask = (1 << BLOCK_BITS) - 1
    return [(h >> (BLOCK_BITS * i)) & mask for i in range(BLOCKS)]


class DedupIndex:
    def __init__(self, max_distance: int = 5):
        if not 0 <= int(max_distance) <= MAX_SUPPORTED_DISTANCE:
            raise ValueError(f"dedup.max_distance must be 0..{MAX_SUPPORTED_DISTANCE} bits (the range the index "
                             f"finds every pair in), got {max_distance}")
        self.max_distance = int(max_distance)
        self.exact: dict[str, str] = {}
        self.entries: list[tuple[str, tuple[int, ...]]] = []  # insertion order = "first"
        self.buckets: list[dict[int, list[int]]] = [defaultdict(list) for _ in range(BLOCKS)]
        self.owners: set[str] = set()
        self.foreign: set[str] = set()  # owners from earlier builds: the same key here is still a copy

    def __len__(self) -> int:
        return len(self.owners)

    def lookup(self, fp: dict) -> Match | None:
        owner = self.exact.get(fp["exact"])
        if owner is not None:
            return Match(owner, "exact", 0, owner in self.foreign)
        if not fp.get("informative", True) or not fp.get("phash"):
            return None
        hashes = [int(h, 16) for h in fp["phash"]]
        candidates: set[int] = set()
        for b, value in enumerate(_blocks(_anchor(hashes))):
            bucket = self.buckets[b]
            for probe in [value] + [value ^ (1 << i) for i in range(BLOCK_BITS)]:
                candidates.update(bucket.get(probe, ()))
        best: tuple[int, int] | None = None  # (entry index, distance): the earliest entry wins
        for idx in sorted(candidates):
            key, other = self.entries[idx]
            if len(other) != len(hashes):
                continue  # an image never matches a clip: their keyframes mean different things
            worst = max(hamming(a, b) for a, b in zip(hashes, other))
            if worst <= self.max_distance:
                best = (idx, worst)
                break
        if best is None:
            return None
        owner = self.entries[best[0]][0]
        return Match(owner, "near", best[1], owner in self.foreign)

    def add(self, key: str, fp: dict, foreign: bool = False) -> None:
        if key in self.owners:
            return
        self.owners.add(key)
        if foreign:
            self.foreign.add(key)
        self.exact.setdefault(fp["exact"], key)
        if fp.get("informative", True) and fp.get("phash"):
            hashes = tuple(int(h, 16) for h in fp["phash"])
            idx = len(self.entries)
            self.entries.append((key, hashes))
            for b, value in enumerate(_blocks(_anchor(list(hashes)))):
                self.buckets[b][value].append(idx)

    def claim(self, key: str, fp: dict) -> Match | None:
        """None: `key` is (or already was) the first occurrence and now owns its content; else the match."""
        if key in self.owners and key not in self.foreign:
            return None
        match = self.lookup(fp)
        if match is None:
            self.add(key, fp)
        return match

    def claim_many(self, claims: list[tuple[str, dict]]) -> list[Match | None]:
        """Claims in the given order (callers sort by key: deterministic within a batch)."""
        return [self.claim(k, fp) for k, fp in claims]


__all__ = ["DedupIndex", "Match", "KEYFRAME_POSITIONS", "MAX_SUPPORTED_DISTANCE"]
