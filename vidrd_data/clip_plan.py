"""Where the clips of a short video go: spans inside shots, by policy (pure functions, no I/O).

A video's usable time is a list of windows, one per shot body (between hard cuts, outside gradual
transitions; `segmentation.shots_from_cuts`), already limited to the annotated segment and margins. A clip
never crosses a window's edge, so it never shows a cut or a transition.

center  one clip: in the window holding the middle of the video if it fits there, else in the fitting
        window nearest to the middle; placed as near to the middle as the window allows.
multi   up to `max_clips` clips, at least `gap` s apart within a window; clips go one at a time to the
        window where they leave the most room around each clip, every shot that fits one getting its first
        clip before any gets a second (more scenes, not more of one); then spread evenly in each window.
Clip length: the clip spec's frames / fps; with min/max_seconds instead, the window up to `max_seconds`
(whole frames), at least `min_seconds`. Spans start on the millisecond grid (keys carry them in ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_EPS = 1e-6


class NoRoom(ValueError):
    """No window holds one clip; the message says why (a `too_short: ...` filter reason)."""


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    shot: int | None = None  # the shot id it belongs to (None: no shot detection ran)

    @property
    def length(self) -> float:
        return self.end - self.start


def clip_length(window: float, clip: dict[str, Any]) -> float | None:
    """Seconds of the clip cut from a `window`-second stretch (None: it does not fit)."""
    fps = float(clip["fps"])
    if clip.get("frames"):
        length = int(clip["frames"]) / fps
        return length if window + _EPS >= length else None
    longest = float(clip.get("max_seconds") or window)
    length = math.floor(min(longest, window) * fps + _EPS) / fps  # whole frames
    need = float(clip.get("min_seconds") or 1 / fps)
    return length if length > 0 and length + _EPS >= need else None


def _capacity(w: Window, length: float | None, gap: float) -> int:
    return 0 if length is None else int(math.floor((w.length + gap + _EPS) / (length + gap)))


def _spread(w: Window, n: int, length: float, gap: float) -> list[tuple[float, float]]:
    pad = (w.length - n * length - (n - 1) * gap) / (n + 1)
    return [_on_ms_grid(w.start + pad + i * (length + gap + pad), w, length) for i in range(n)]


def _on_ms_grid(s: float, w: Window, length: float) -> tuple[float, float]:
    s = max(w.start, math.floor(s * 1000 + _EPS) / 1000)  # rounding down keeps the end inside the window
    return round(s, 6), round(s + length, 6)


def plan_spans(windows: list[Window], clip: dict[str, Any], policy: str = "center", max_clips: int = 1,
               gap: float = 0.0) -> list[tuple[float, float, int | None]]:
    """(start, end, shot) of each clip, in time order. Raises NoRoom when no window holds a clip."""
    if policy not in ("center", "multi"):
        raise ValueError(f"policy must be center or multi, got {policy!r}")
    lengths = [clip_length(w.length, clip) for w in windows]
    caps = [_capacity(w, n, gap) for w, n in zip(windows, lengths)]
    if not any(caps):
        total = (windows[-1].end - windows[0].start) if windows else 0.0
        fps = float(clip["fps"])
        need = int(clip["frames"]) / fps if clip.get("frames") else float(clip.get("min_seconds") or 1 / fps)
        if len(windows) <= 1 or total + _EPS < need:
            raise NoRoom(f"too_short: video is {total:.2f} s, shorter than one {need:.2f} s clip")
        longest = max(w.length for w in windows)
        raise NoRoom(f"too_short: no shot holds a {need:.2f} s clip: the longest of {len(windows)} shots "
                     f"(between cuts and transitions) is {longest:.2f} s")
    if policy == "center":
        mid = (windows[0].start + windows[-1].end) / 2
        fits = [i for i, c in enumerate(caps) if c]
        i = min(fits, key=lambda j: (max(windows[j].start - mid, mid - windows[j].end, 0.0), -windows[j].length))
        w, length = windows[i], lengths[i]
        s = min(max(mid - length / 2, w.start), w.end - length)
        return [(*_on_ms_grid(s, w, length), w.shot)]
    counts = [0] * len(windows)
    for _ in range(max_clips):
        room = [(n == 0, (w.length - (n + 1) * lengths[i] - n * gap) / (n + 2), -i)
                for i, (w, n) in enumerate(zip(windows, counts)) if n < caps[i]]
        if not room:
            break
        counts[-max(room)[2]] += 1
    out = [(s, e, w.shot) for w, n, length in zip(windows, counts, lengths) if n for s, e in _spread(w, n, length, gap)]
    return sorted(out)
