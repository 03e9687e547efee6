"""Generated multi-scene videos with exactly known hard cuts, dissolves and fades (test inputs, made here).

Each scene is a textured picture on its own base colour with a moving pattern and a moving square, so
shot detectors see motion, not stills. A timeline is a list of parts:
    ("scene", k, seconds)       scene k (index into COLOURS) for that long; two scenes in a row: a hard cut
    ("dissolve", seconds)       the previous scene blends linearly into the next one
    ("fade", seconds)           fade to black over the first half, from black into the next scene over the second
`write_scene_video` writes the H.264 file and returns the truth: the pure-scene intervals (`shots`) and the
transition intervals (frames that show a blend), in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

COLOURS = [(205, 50, 45), (45, 170, 70), (50, 80, 215), (225, 200, 50), (150, 60, 190), (40, 185, 195)]


def scene_frame(k: int, i: int, size: tuple[int, int]) -> np.ndarray:
    """Frame i of scene k: base colour + scene-specific stripes drifting 1 px/frame + a moving square."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    period = 12 + 5 * k
    angle = 0.6 * k
    phase = (x * np.cos(angle) + y * np.sin(angle) - i) * 2 * np.pi / period
    img = np.asarray(COLOURS[k % len(COLOURS)], np.float32) + 30 * np.sin(phase)[..., None]
    s = h // 4
    x0 = int((i * 2 + 17 * k) % max(1, w - s))
    y0 = int((h - s) / 2 + (h / 4) * np.sin(i / 10 + k))
    img[y0:y0 + s, x0:x0 + s] = (255 - np.asarray(COLOURS[k % len(COLOURS)], np.float32)) * 0.8
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class SceneTruth:
    duration: float
    shots: list[tuple[float, float, int]] = field(default_factory=list)  # (start, end, scene) of pure frames
    cuts: list[float] = field(default_factory=list)  # hard cuts
    transitions: list[tuple[float, float]] = field(default_factory=list)  # [first, last frame end) of blends

    def scene_at(self, t: float) -> int | None:
        """The scene shown at time t, or None inside a transition."""
        for s, e, k in self.shots:
            if s - 1e-6 <= t < e - 1e-6:
                return k
        return None


def _timeline_frames(parts, fps: int):
    """Yield (frame, kind, scene) per output frame; kind is 'scene' or 'blend'."""
    counters: dict[int, int] = {}
    scenes = [p[1] for p in parts if p[0] == "scene"]
    nxt = 0
    for j, part in enumerate(parts):
        if part[0] == "scene":
            k, n = part[1], int(round(part[2] * fps))
            for _ in range(n):
                i = counters.get(k, 0)
                counters[k] = i + 1
                yield ("scene", k, i)
            nxt += 1
        else:
            a, b = scenes[nxt - 1], scenes[nxt]
            n = int(round(part[1] * fps))
            for f in range(n):
                w = (f + 1) / (n + 1)
                ia, ib = counters.get(a, 0), counters.get(b, 0)
                counters[a], counters[b] = ia + 1, ib  # the outgoing scene keeps moving; the next starts fresh
                yield (part[0], (a, b, w), (ia, ib))


def write_scene_video(path: Path, parts, fps: int = 25, size: tuple[int, int] = (192, 108), crf: int = 16) -> SceneTruth:
    truth = SceneTruth(0.0)
    frames = list(_timeline_frames(parts, fps))
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = {"preset": "ultrafast", "crf": str(crf), "g": str(fps), "bf": "0"}
        prev_kind, prev_scene = None, None
        for n, (kind, what, idx) in enumerate(frames):
            t = n / fps
            if kind == "scene":
                arr = scene_frame(what, idx, size)
                if prev_kind == "scene" and prev_scene != what:
                    truth.cuts.append(round(t, 6))
                if prev_kind != "scene" or prev_scene != what:
                    truth.shots.append((t, t, what))
                truth.shots[-1] = (truth.shots[-1][0], t + 1 / fps, what)
                prev_scene = what
            else:
                a, b, w = what
                fa, fb = scene_frame(a, idx[0], size).astype(np.float32), scene_frame(b, 0, size).astype(np.float32)
                if kind == "dissolve":
                    arr = (1 - w) * fa + w * fb
                else:  # fade: out to black in the first half, in from black in the second
                    arr = fa * max(0.0, 1 - 2 * w) if w < 0.5 else fb * max(0.0, 2 * w - 1)
                arr = np.clip(arr, 0, 255).astype(np.uint8)
                if prev_kind == "scene":
                    truth.transitions.append((t, t))
                truth.transitions[-1] = (truth.transitions[-1][0], t + 1 / fps)
                prev_scene = None
            prev_kind = "scene" if kind == "scene" else "blend"
            fr = av.VideoFrame.from_ndarray(arr, format="rgb24")
            fr.pts, fr.time_base = n, Fraction(1, fps)
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    truth.duration = len(frames) / fps
    truth.shots = [(round(a, 6), round(b, 6), k) for a, b, k in truth.shots]
    truth.transitions = [(round(a, 6), round(b, 6)) for a, b in truth.transitions]
    return truth


def mean_colour_scene(frame: np.ndarray, tol: float = 40.0) -> int | None:
    """The scene whose base colour the frame's mean colour matches (within tol), else None (a blend)."""
    m = frame.reshape(-1, 3).mean(0)
    d = [float(np.abs(m - np.asarray(c)).max()) for c in COLOURS]
    k = int(np.argmin(d))
    return k if d[k] <= tol else None


# A timeline with every kind of boundary: hard cuts, a dissolve, a fade through black (16.6 s).
MIXED_TIMELINE = [("scene", 0, 2.4), ("scene", 1, 2.0), ("dissolve", 1.0), ("scene", 2, 3.0),
                  ("fade", 1.2), ("scene", 3, 2.4), ("scene", 4, 2.0), ("dissolve", 0.6), ("scene", 5, 2.0)]
