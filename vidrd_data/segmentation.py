"""Semantic segmentation rules: shots + their boundary-frame embeddings -> candidate segments.

Pure functions (no I/O, no models) so every rule is unit-testable. Shots tile the video: a hard cut ends one
shot where the next begins; a gradual transition (dissolve, fade) is split at its middle, and each side
keeps its part of it as `trans_out` / `trans_in`, which no clip may use: a shot's *body* is what lies
between them. Each shot carries k >= 2 L2-normalised embeddings, first near its body's start and last near
its end. The rules, in order:

1. internal transition: a shot whose own start and end frames disagree (sim < internal_min_sim) still holds
   a change no detector saw (a missed cut or dissolve) -> its own candidate, dropped.
2. merge: adjacent shots whose facing boundary frames agree (sim >= merge_min_sim) are the same scene seen
   across a camera cut or transition -> one segment (one caption, one row). Forced cuts (inside over-long
   shots) are never merged back.
3. the clip window: the longest shot body of the segment, `trim_s` off both ends (cut residue). A clip
   never spans a cut or a transition, merged segment or not. Dropped: too short (the window holds fewer
   frames at the output fps than min_segment_s needs: counted in frames, so a kept segment always yields
   its clip), static (start vs end sim >= static_min_sim) or redundant (mean embedding sim >=
   redundant_min_sim with an earlier kept segment of the same video);
4. cap the window at max_segment_s.

Every candidate records the similarities that decided it, so a threshold can be tuned from the json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import math

import numpy as np

KEEP = "keep"
_EPS = 1e-6


@dataclass(frozen=True)
class Shot:
    id: int
    start: float  # its tile of the timeline: [start, end)
    end: float
    cut: str = "hard"  # how it begins: "start" (video start) | "hard" | "gradual" (transition) | "forced" (length cap)
    trans_in: float = 0.0  # seconds at its start that belong to a transition (never in a clip)
    trans_out: float = 0.0  # the same at its end

    @property
    def body_start(self) -> float:
        return self.start + self.trans_in

    @property
    def body_end(self) -> float:
        return max(self.body_start, self.end - self.trans_out)


def grid_span(start: float, end: float, fps: float) -> tuple[int, int]:
    """(k_first, k_end): output frames k / fps with k_first <= k < k_end lie in [start, end) together with
    their whole frame duration; k_end - k_first is how many frames a clip cut from [start, end) can hold."""
    return math.ceil(start * fps - _EPS), math.floor(end * fps + _EPS)


def grid_frames(start: float, end: float, fps: float) -> int:
    lo, hi = grid_span(start, end, fps)
    return max(0, hi - lo)


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

    def keeps_every_shot(self, longest_shot_s: float) -> bool:
        """True when no rule drops, merges or shortens a shot of up to `longest_shot_s` (beyond trim_s and
        min_segment_s): every similarity rule off (a cosine is never below -1 or above 1) and no length cap
        below that shot length. The clips then cover about the whole video (PySceneDetect's split-video output)."""
        return (self.internal_min_sim <= -1 and self.merge_min_sim > 1 and self.static_min_sim > 1
                and self.redundant_min_sim > 1 and (not self.max_segment_s or self.max_segment_s >= longest_shot_s))


@dataclass
class Segment:
    shot_ids: list[int]
    start: float  # raw span: first shot's start .. last shot's end (tiles: transitions split at their middle)
    end: float
    clip_start: float  # the clip window: inside one shot's body, trimmed and capped (what gets cut when kept)
    clip_end: float
    status: str = KEEP  # KEEP or the rule that dropped it
    reason: str = ""
    sims: dict[str, Any] = field(default_factory=dict)
    clip_shot: int | None = None  # the shot the clip window lies in

    @property
    def kept(self) -> bool:
        return self.status == KEEP

    def as_dict(self) -> dict[str, Any]:
        return {"shot_ids": self.shot_ids, "raw_span": [r3(self.start), r3(self.end)],
                "span": [r3(self.clip_start), r3(self.clip_end)], "status": self.status,
                "reason": self.reason, "sims": self.sims, "clip_shot": self.clip_shot}


def r3(x: float) -> float:
    return round(float(x), 3)


def shots_from_cuts(duration: float, cuts: list[float], max_shot_s: float = 0.0,
                    transitions: list[tuple[float, float]] | tuple = ()) -> list[Shot]:
    """Shots tiling [0, duration): split at hard cuts and at the middle of each gradual transition (a cut
    inside a transition is part of it); a transition at either end of the video only shortens the body.
    Bodies longer than max_shot_s get evenly spaced forced cuts."""
    trans: list[list[float]] = []
    for a, b in sorted((max(0.0, float(a)), min(duration, float(b))) for a, b in transitions):
        if b <= a:
            continue
        if trans and a <= trans[-1][1]:
            trans[-1][1] = max(trans[-1][1], b)
        else:
            trans.append([a, b])
    lead = max([b for a, b in trans if a <= 0.0], default=0.0)
    trail = max([duration - a for a, b in trans if b >= duration], default=0.0)
    # (time, kind, transition before it, transition after it)
    events = [(c, "hard", 0.0, 0.0) for c in sorted(set(cuts))
              if 0.0 < c < duration and not any(a <= c <= b for a, b in trans)]
    events += [((a + b) / 2, "gradual", (b - a) / 2, (b - a) / 2) for a, b in trans if 0.0 < a and b < duration]
    events.sort()
    shots: list[Shot] = []
    for i in range(len(events) + 1):
        start, kind, _, t_in = events[i - 1] if i else (0.0, "start", 0.0, lead)
        end, _, t_out, _ = events[i] if i < len(events) else (duration, "", trail, 0.0)
        tile = Shot(0, start, end, kind, t_in, t_out)
        body = tile.body_end - tile.body_start
        n = int(np.ceil(body / max_shot_s - 1e-9)) if max_shot_s and body > max_shot_s else 1
        cuts_in = [tile.body_start + j * body / n for j in range(1, n)]
        edges = [start] + cuts_in + [end]
        for j in range(n):
            shots.append(Shot(len(shots), edges[j], edges[j + 1], kind if j == 0 else "forced",
                              t_in if j == 0 else 0.0, t_out if j == n - 1 else 0.0))
    return shots


def _sim(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def _clip_window(shots: list[Shot], rules: SegmentRules, fps: float | None) -> tuple[Shot, float, float]:
    """The segment's clip window: the shot body (trimmed) that holds the most output frames (ties: earliest)."""
    def room(shot: Shot) -> tuple[float, float]:
        a, b = shot.body_start + rules.trim_s, shot.body_end - rules.trim_s
        return (grid_frames(a, b, fps) if fps else 0), b - a

    best = max(shots, key=room)  # max keeps the first of equals
    return best, best.body_start + rules.trim_s, best.body_end - rules.trim_s


def segment_shots(shots: list[Shot], emb: np.ndarray, rules: SegmentRules, fps: float | None = None) -> list[Segment]:
    """shots (time order) + emb (n_shots, k, D) -> candidate segments in time order (kept and dropped).

    `fps`: the output frame rate; durations are then counted in whole output frames (None: in seconds)."""
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 3 or emb.shape[0] != len(shots) or emb.shape[1] < 2:
        raise ValueError(f"need embeddings (n_shots={len(shots)}, k>=2, D), got {emb.shape}")
    internal = [_sim(emb[i, 0], emb[i, -1]) for i in range(len(shots))]

    groups: list[tuple[list[int], str, str]] = []  # (shot indices, status, reason)
    current: list[int] = []
    boundary_sims: dict[int, dict] = {}

    def close():
        if current:
            groups.append((list(current), KEEP, ""))
            current.clear()

    for i, shot in enumerate(shots):
        if i > 0:
            s = _sim(emb[i - 1, -1], emb[i, 0])
            boundary_sims[i] = {"sim": r3(s), "cut": shot.cut}
        if internal[i] < rules.internal_min_sim:
            close()
            groups.append(([i], "internal_transition",
                           f"shot {shot.id}: start/end sim {internal[i]:.3f} < internal_min_sim {rules.internal_min_sim}"))
            continue
        mergeable = (current and current[-1] == i - 1 and shot.cut in ("hard", "gradual")
                     and boundary_sims[i]["sim"] >= rules.merge_min_sim)
        if current and not mergeable:
            close()
        if mergeable:
            boundary_sims[i]["merged"] = True
        current.append(i)
    close()

    need = math.ceil(rules.min_segment_s * fps - _EPS) if fps else None
    segments: list[Segment] = []
    kept_means: list[tuple[int, np.ndarray]] = []
    for idx, status, reason in groups:
        first, last = shots[idx[0]], shots[idx[-1]]
        sims: dict[str, Any] = {
            "internal": [r3(internal[i]) for i in idx],
            "merged_boundaries": [boundary_sims[i]["sim"] for i in idx[1:]],
            "boundary_before": boundary_sims.get(idx[0], {}).get("sim"),
            "boundary_after": boundary_sims.get(idx[-1] + 1, {}).get("sim"),
        }
        best, w0, w1 = _clip_window([shots[i] for i in idx], rules, fps)
        seg = Segment([shots[i].id for i in idx], first.start, last.end, w0, w1, status, reason, sims, best.id)
        segments.append(seg)
        if status != KEEP:
            continue
        length = w1 - w0
        start_end = _sim(emb[idx[0], 0], emb[idx[-1], -1])
        mean = emb[idx].reshape(-1, emb.shape[-1]).mean(0)
        mean /= max(np.linalg.norm(mean), 1e-12)
        sims["start_end"] = r3(start_end)
        if fps and grid_frames(w0, w1, fps) < need:
            seg.status = "too_short"
            seg.reason = (f"{grid_frames(w0, w1, fps)} frames at {fps:g} fps in its longest shot after trimming "
                          f"(shot {best.id}, {max(length, 0):.2f} s) < {need} for min_segment_s {rules.min_segment_s}")
            continue
        if not fps and length < rules.min_segment_s - _EPS:
            seg.status, seg.reason = "too_short", f"{max(length, 0):.2f} s after trimming < min_segment_s {rules.min_segment_s}"
            continue
        if start_end >= rules.static_min_sim:
            seg.status, seg.reason = "static", f"start/end sim {start_end:.4f} >= static_min_sim {rules.static_min_sim}"
            continue
        if kept_means:
            top = max(kept_means, key=lambda km: _sim(km[1], mean))
            top_sim = _sim(top[1], mean)
            sims["redundant_max"] = {"sim": r3(top_sim), "with_segment": top[0]}
            if top_sim >= rules.redundant_min_sim:
                seg.status = "redundant"
                seg.reason = (f"mean sim {top_sim:.3f} with segment {top[0]} "
                              f">= redundant_min_sim {rules.redundant_min_sim}")
                continue
        if rules.max_segment_s and length > rules.max_segment_s:
            seg.clip_end = seg.clip_start + rules.max_segment_s
            sims["capped_from_s"] = r3(length)
        kept_means.append((len(segments) - 1, mean))
    return segments


def boundaries(segments: list[Segment]) -> list[float]:
    """Cut points between consecutive candidate segments (after merging, before dropping); a gradual
    transition's is its middle."""
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
