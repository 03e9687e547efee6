"""Semantic segmentation rules: shots + their boundary-frame embeddings -> candidate segments.

Pure functions (no I/O, no models) so every rule is unit-testable. Each shot carries k >= 2 L2-normalised
embeddings, first near its start and last near its end. The rules, in order:

1. internal transition: a shot whose own start and end frames disagree (sim < internal_min_sim) holds a
   dissolve/fade or a missed cut -> its own candidate, dropped.
2. merge: adjacent shots whose facing boundary frames agree (sim >= merge_min_sim) are the same scene seen
   across a camera cut -> one segment. Forced cuts (inside over-long shots) are never merged back.
3. trim `trim_s` off both ends (transition residue), then drop segments that are
   too short (< min_segment_s), static (start vs end sim >= static_min_sim) or redundant (mean embedding
   sim >= redundant_min_sim with an earlier kept segment of the same video);
4. cap the kept length at max_segment_s.

Every candidate records the similarities that decided it, so a threshold can be tuned from the json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

KEEP = "keep"


@dataclass(frozen=True)
class Shot:
    id: int
    start: float
    end: float
    cut: str = "hard"  # how this shot begins: "start" (video start) | "hard" (detected) | "forced" (length cap)


@dataclass(frozen=True)
class SegmentRules:
    internal_min_sim: float = 0.5
    merge_min_sim: float = 0.9
    min_segment_s: float = 2.0
    static_min_sim: float = 0.995
    redundant_min_sim: float = 0.97
    max_segment_s: float = 60.0
    trim_s: float = 0.25

    def __post_init__(self):
        for name in ("min_segment_s", "max_segment_s", "trim_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"segment rule {name} must be >= 0, got {getattr(self, name)}")
        if self.max_segment_s and self.max_segment_s < self.min_segment_s:
            raise ValueError(f"max_segment_s ({self.max_segment_s}) < min_segment_s ({self.min_segment_s})")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Segment:
    shot_ids: list[int]
    start: float  # raw span: first shot's start .. last shot's end
    end: float
    clip_start: float  # after trimming and capping (what gets cut when kept)
    clip_end: float
    status: str = KEEP  # KEEP or the rule that dropped it
    reason: str = ""
    sims: dict[str, Any] = field(default_factory=dict)

    @property
    def kept(self) -> bool:
        return self.status == KEEP

    def as_dict(self) -> dict[str, Any]:
        return {"shot_ids": self.shot_ids, "raw_span": [r3(self.start), r3(self.end)],
                "span": [r3(self.clip_start), r3(self.clip_end)], "status": self.status,
                "reason": self.reason, "sims": self.sims}


def r3(x: float) -> float:
    return round(float(x), 3)


def shots_from_cuts(duration: float, cuts: list[float], max_shot_s: float = 0.0) -> list[Shot]:
    """Shots between detected cuts; shots longer than max_shot_s get evenly spaced forced cuts."""
    bounds = [(0.0, "start")] + [(c, "hard") for c in sorted(cuts) if 0.0 < c < duration]
    shots: list[Shot] = []
    for i, (start, kind) in enumerate(bounds):
        end = bounds[i + 1][0] if i + 1 < len(bounds) else duration
        pieces = [start]
        if max_shot_s and end - start > max_shot_s:
            n = int(np.ceil((end - start) / max_shot_s - 1e-9))
            pieces += [start + j * (end - start) / n for j in range(1, n)]
        for j, s in enumerate(pieces):
            e = pieces[j + 1] if j + 1 < len(pieces) else end
            shots.append(Shot(len(shots), s, e, kind if j == 0 else "forced"))
    return shots


def _sim(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def segment_shots(shots: list[Shot], emb: np.ndarray, rules: SegmentRules) -> list[Segment]:
    """shots (time order) + emb (n_shots, k, D) -> candidate segments in time order (kept and dropped)."""
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 3 or emb.shape[0] != len(shots) or emb.shape[1] < 2:
        raise ValueError(f"need embeddings (n_shots={len(shots)}, k>=2, D), got {emb.shape}")
    internal = [_sim(emb[i, 0], emb[i, -1]) for i in range(len(shots))]

    groups: list[tuple[list[int], str, str, dict]] = []  # (shot indices, status, reason, sims)
    current: list[int] = []
    boundary_sims: dict[int, dict] = {}

    def close():
        if current:
            groups.append((list(current), KEEP, "", {}))
            current.clear()

    for i, shot in enumerate(shots):
        if i > 0:
            s = _sim(emb[i - 1, -1], emb[i, 0])
            boundary_sims[i] = {"sim": r3(s), "cut": shot.cut}
        if internal[i] < rules.internal_min_sim:
            close()
            groups.append(([i], "internal_transition",
                           f"shot {shot.id}: start/end sim {internal[i]:.3f} < internal_min_sim {rules.internal_min_sim}",
                           {}))
            continue
        mergeable = (current and current[-1] == i - 1 and shot.cut == "hard"
                     and boundary_sims[i]["sim"] >= rules.merge_min_sim)
        if current and not mergeable:
            close()
        if mergeable:
            boundary_sims[i]["merged"] = True
        current.append(i)
    close()

    segments: list[Segment] = []
    kept_means: list[tuple[int, np.ndarray]] = []
    for idx, status, reason, _ in groups:
        first, last = shots[idx[0]], shots[idx[-1]]
        sims: dict[str, Any] = {
            "internal": [r3(internal[i]) for i in idx],
            "merged_boundaries": [boundary_sims[i]["sim"] for i in idx[1:]],
            "boundary_before": boundary_sims.get(idx[0], {}).get("sim"),
            "boundary_after": boundary_sims.get(idx[-1] + 1, {}).get("sim"),
        }
        seg = Segment([shots[i].id for i in idx], first.start, last.end,
                      first.start + rules.trim_s, last.end - rules.trim_s, status, reason, sims)
        segments.append(seg)
        if status != KEEP:
            continue
        length = seg.clip_end - seg.clip_start
        start_end = _sim(emb[idx[0], 0], emb[idx[-1], -1])
        mean = emb[idx].reshape(-1, emb.shape[-1]).mean(0)
        mean /= max(np.linalg.norm(mean), 1e-12)
        sims["start_end"] = r3(start_end)
        if length < rules.min_segment_s:
            seg.status, seg.reason = "too_short", f"{max(length, 0):.2f} s after trimming < min_segment_s {rules.min_segment_s}"
            continue
        if start_end >= rules.static_min_sim:
            seg.status, seg.reason = "static", f"start/end sim {start_end:.4f} >= static_min_sim {rules.static_min_sim}"
            continue
        if kept_means:
            best = max(kept_means, key=lambda km: _sim(km[1], mean))
            best_sim = _sim(best[1], mean)
            sims["redundant_max"] = {"sim": r3(best_sim), "with_segment": best[0]}
            if best_sim >= rules.redundant_min_sim:
                seg.status = "redundant"
                seg.reason = (f"mean sim {best_sim:.3f} with segment {best[0]} "
                              f">= redundant_min_sim {rules.redundant_min_sim}")
                continue
        if rules.max_segment_s and length > rules.max_segment_s:
            seg.clip_end = seg.clip_start + rules.max_segment_s
            sims["capped_from_s"] = r3(length)
        kept_means.append((len(segments) - 1, mean))
    return segments


def boundaries(segments: list[Segment]) -> list[float]:
    """Cut points between consecutive candidate segments (after merging, before dropping)."""
    return [s.start for s in segments[1:]]


def match_boundaries(found: list[float], truth: list[float], tol: float = 0.5) -> tuple[float, float]:
    """(precision, recall) with one-to-one greedy matching within `tol` seconds."""
    used: set[int] = set()
    hits = 0
    for f in sorted(found):
        best = min((j for j in range(len(truth)) if j not in used and abs(truth[j] - f) <= tol),
                   key=lambda j: abs(truth[j] - f), default=None)
        if best is not None:
            used.add(best)
            hits += 1
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    return precision, recall
