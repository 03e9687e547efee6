"""The plain-Python side of fingerprints: where a clip's hashed keyframes sit and the pHash distance.

The dedup index actor (started fresh by every build, its first shard waiting for it) needs only these, so they
live apart from `hashes.py` and its numpy / OpenCV imports.
"""

from __future__ import annotations

KEYFRAME_POSITIONS = (0.2, 0.5, 0.8)  # where a clip's hashed keyframes sit (0 = first frame, 1 = last)


def hamming(a: int, b: int) -> int:
    return int(a ^ b).bit_count()


def keyframe_indices(n: int, positions=KEYFRAME_POSITIONS) -> list[int]:
    return [min(n - 1, max(0, int(round(p * (n - 1))))) for p in positions]
