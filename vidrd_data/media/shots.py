"""Where shots change: hard cuts (PySceneDetect) and gradual transitions (dissolves, fades), from one frame stream.

`ShotFinder` is fed decoded frames in time order (the long-video scan and the short-video `detect_shots`
stage both use it) and returns the hard cuts and the gradual-transition intervals, in seconds of the
stream's clock. A clip that must show one shot avoids both: it ends at or before a cut and lies outside
every transition interval.

Gradual transitions: a dissolve or fade shows frames that are blends of what comes before and after. For a
frame C at time t and anchors A (t - w) and B (t + w), C is a blend when A and B differ clearly (mean
absolute difference >= `transition_min_change` on 0-255), C lies between them (C ~ A + a (B - A) with
0.15 <= a <= 0.85) and little is left over (residual / |B - A| <= `transition_max_residual`). Camera motion
and moving objects leave a large residual; at a hard cut a ~ 0 or 1. Checked at two windows
(0.6 w and w) on small thumbnails; a run of blend frames lasting `transition_min_s` is a transition. Nearly
black frames next to a transition, a cut or the video's ends (fade through black, black leader) join it.
Each interval is padded by `transition_pad_s` each side (the faint first/last blend frames the test misses).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

_THUMB = (48, 27)  # blend test resolution: detail small enough to ignore noise, large enough to see motion


@dataclass
class DetectConfig:
    detector: str = "content"  # content | adaptive
    threshold: float = 27.0  # ContentDetector
    adaptive_threshold: float = 3.0  # AdaptiveDetector
    min_content_val: float = 15.0  # AdaptiveDetector
    window_width: int = 2  # AdaptiveDetector
    min_scene_len_s: float = 0.6
    luma_only: bool = False
    detect_width: int = 256  # frames are downscaled to this width for detection (speed; cuts survive it)
    frame_skip: int = 0  # detect on every (frame_skip+1)-th frame
    transitions: bool = True  # find dissolves / fades too
    transition_window_s: float = 0.5
    transition_min_change: float = 12.0
    transition_max_residual: float = 0.35  # measured: 0.3 missed a 0.6 s random-pixel dissolve (ffmpeg xfade)
    transition_min_s: float = 0.2  # shorter blend runs: camera motion on the real sample clips
    transition_pad_s: float = 0.6
    dark_max_luma: float = 24.0  # mean luma of a "black" frame (0-255)
    dark_max_std: float = 10.0
    dark_max_s: float = 3.0  # a longer dark stretch is footage (night), not a fade

    def __post_init__(self):
        if self.detector not in ("content", "adaptive"):
            raise ValueError(f"detector must be 'content' or 'adaptive', got {self.detector!r}")
        for name in ("transition_window_s", "transition_min_s", "min_scene_len_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def _l1_mean(left: np.ndarray, right: np.ndarray) -> float:
    """Mean absolute difference of two equal-shape 2-D uint8 planes: OpenCV sums |l - r| in integers (exact below
    2**53, i.e. any frame), so this is the value numpy's int32 subtract-abs-sum gives, in one pass."""
    return cv2.norm(left, right, cv2.NORM_L1) / float(left.shape[0] * left.shape[1])


def use_exact_fast_pixel_distance() -> bool:
    """Speed up PySceneDetect's frame score without changing it.

    ContentDetector (and AdaptiveDetector, which scores with it) compares each frame's H, S and V planes with the
    previous frame's through the module function `_mean_pixel_distance`: three int32 copies, a subtraction, an
    abs and a sum per plane (~0.07 ms each at 256x144, ~15 % of a scan's CPU). `_l1_mean` returns the same
    float in one OpenCV call, so the scores and therefore the cuts are unchanged. Installed once per process,
    and only when the library's function agrees with it on probe planes (a later PySceneDetect that changes
    the score keeps its own); anything but two equal-shape 2-D uint8 planes still goes to the original.
    Returns whether the fast path is in use."""
    from scenedetect.detectors import content_detector as cd

    original = getattr(cd, "_mean_pixel_distance", None)
    if original is None:
        return False
    if getattr(original, "_vidrd_fast", False):
        return True
    rng = np.random.default_rng(0)
    probes = [(rng.integers(0, 256, (27, 48), np.uint8), rng.integers(0, 256, (27, 48), np.uint8)),
              (np.zeros((9, 16), np.uint8), np.full((9, 16), 255, np.uint8)),
              (np.full((4, 6), 7, np.uint8), np.full((4, 6), 7, np.uint8))]
    try:
        if any(float(original(a, b)) != _l1_mean(a, b) for a, b in probes):
            return False
    except Exception:  # noqa: BLE001 - a changed signature: keep the library's own
        return False

    def mean_pixel_distance(left, right):
        if (isinstance(left, np.ndarray) and isinstance(right, np.ndarray) and left.dtype == np.uint8
                and right.dtype == np.uint8 and left.ndim == 2 and left.shape == right.shape):
            return _l1_mean(left, right)
        return original(left, right)

    mean_pixel_distance._vidrd_fast = True
    mean_pixel_distance._vidrd_original = original
    cd._mean_pixel_distance = mean_pixel_distance
    return True


def make_detector(cfg: DetectConfig):
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    use_exact_fast_pixel_distance()
    if cfg.detector == "content":
        return ContentDetector(threshold=cfg.threshold, min_scene_len=float(cfg.min_scene_len_s),
                               luma_only=cfg.luma_only)
    return AdaptiveDetector(adaptive_threshold=cfg.adaptive_threshold, min_scene_len=float(cfg.min_scene_len_s),
                            window_width=cfg.window_width, min_content_val=cfg.min_content_val,
                            luma_only=cfg.luma_only)


def _runs(times: list[float], flags: list[bool], gap: float) -> list[list[float]]:
    """[first, last] time of each run of flagged samples (samples closer than `gap` join)."""
    out: list[list[float]] = []
    for t, f in zip(times, flags):
        if f:
            if out and t - out[-1][1] <= gap:
                out[-1][1] = t
            else:
                out.append([t, t])
    return out


def _merge(intervals: list[list[float]], gap: float = 0.0) -> list[list[float]]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


class TransitionFinder:
    """The blend test of the module docstring, online: keeps ~2 windows of thumbnails, never the video."""

    def __init__(self, cfg: DetectConfig):
        self.cfg = cfg
        self.windows = (0.6 * cfg.transition_window_s, cfg.transition_window_s)
        self.buf: deque[tuple[float, np.ndarray]] = deque()
        self.pending = 0  # index in buf of the next centre frame to judge
        self.times: list[float] = []
        self.blend: list[bool] = []
        self.dark: list[bool] = []

    @property
    def step(self) -> float:
        """Mean time between judged frames (the sampling step; 1/25 s before there are two)."""
        return (self.times[-1] - self.times[0]) / (len(self.times) - 1) if len(self.times) > 1 else 0.04

    def push(self, t: float, thumb: np.ndarray) -> None:
        self.buf.append((t, thumb.astype(np.float32).ravel()))
        w = self.windows[-1]
        while self.pending < len(self.buf) and self.buf[self.pending][0] + w <= t + 1e-9:
            self._judge(self.pending)
            self.pending += 1
        if self.pending < len(self.buf):  # keep the last frame at or before (next centre - w), and all after
            tc = self.buf[self.pending][0]
            while self.pending > 0 and self.buf[1][0] <= tc - w + 1e-9:
                self.buf.popleft()
                self.pending -= 1

    def _judge(self, i: int) -> None:
        frames = list(self.buf)
        tc, c = frames[i]
        luma = c.reshape(-1, 3) @ np.array([0.299, 0.587, 0.114], np.float32)
        self.dark.append(bool(luma.mean() <= self.cfg.dark_max_luma and luma.std() <= self.cfg.dark_max_std))
        self.times.append(tc)
        self.blend.append(any(self._is_blend(frames, i, w) for w in self.windows))

    def _is_blend(self, frames: list[tuple[float, np.ndarray]], i: int, w: float) -> bool:
        tc, c = frames[i]
        a = next((x for t, x in reversed(frames[:i]) if t <= tc - w + 1e-9), None)
        b = next((x for t, x in frames[i + 1:] if t >= tc + w - 1e-9), None)
        if a is None or b is None:
            return False
        ba = b - a
        if float(np.abs(ba).mean()) < self.cfg.transition_min_change:
            return False
        n2 = float(ba @ ba)
        alpha = float((c - a) @ ba) / n2
        if not 0.15 <= alpha <= 0.85:
            return False
        return float(np.linalg.norm(c - a - alpha * ba)) / n2 ** 0.5 <= self.cfg.transition_max_residual

    def judge_rest(self) -> None:
        """Judge the frames still waiting for their look-ahead (the stream ended)."""
        while self.pending < len(self.buf):
            self._judge(self.pending)
            self.pending += 1

    def finish(self, duration: float, cuts: list[float]) -> list[tuple[float, float]]:
        """Transition intervals [start, end) in seconds, padded, merged, clipped to [0, duration]."""
        self.judge_rest()
        return transition_intervals(self.cfg, self.times, self.blend, self.dark, duration, cuts)


def transition_intervals(cfg: DetectConfig, times: list[float], blend: list[bool], dark: list[bool],
                         duration: float, cuts: list[float]) -> list[tuple[float, float]]:
    """The judged frames (time, blend?, dark?) of a whole video -> transition intervals [start, end): blend runs
    of at least transition_min_s, short dark runs next to a transition, cut or end joined, padded, merged.
    A pure function of the judgements, so time ranges judged apart give what one pass gives."""
    step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 0.04  # mean judged-frame step
    gap, pad, window = 2.5 * step, cfg.transition_pad_s, cfg.transition_window_s
    blends = [r for r in _runs(times, blend, gap) if r[1] - r[0] + step >= cfg.transition_min_s]
    anchors = [t for r in blends for t in r] + list(cuts) + [0.0, duration]
    darks = [r for r in _runs(times, dark, gap) if r[1] - r[0] + step <= cfg.dark_max_s
             and any(r[0] - window <= t <= r[1] + step + window for t in anchors)]
    spans = [[a - pad, b + step + pad] for a, b in blends] + [[a, b + step] for a, b in darks]
    merged = _merge(spans)
    return [(round(max(0.0, a), 6), round(min(duration, b), 6)) for a, b in merged if min(duration, b) > max(0.0, a)]


def detect_height(width: int, height: int, detect_width: int) -> int:
    """The detection picture's height: the aspect kept, even."""
    return max(2, round(height * detect_width / width / 2) * 2)


class ShotFinder:
    """Hard cuts + gradual transitions from frames pushed in time order (one pass, nothing kept but thumbnails
    of the last second)."""

    def __init__(self, cfg: DetectConfig, rate: float):
        from scenedetect.common import FrameTimecode

        self.cfg, self.rate, self._tc = cfg, rate, FrameTimecode
        self.detector = make_detector(cfg)
        self.transitions = TransitionFinder(cfg) if cfg.transitions else None
        self.cuts: list[float] = []
        self._rf = VideoReformatter()
        self._h: int | None = None
        self.n = 0

    def push(self, t: float, frame: av.VideoFrame) -> None:
        n, self.n = self.n, self.n + 1
        if n % (self.cfg.frame_skip + 1):
            return
        if self._h is None:
            self._h = detect_height(frame.width, frame.height, self.cfg.detect_width)
        img = self._rf.reformat(frame, width=self.cfg.detect_width, height=self._h, format="bgr24",
                                interpolation="AREA").to_ndarray()
        self._detect(t, img)

    def push_bgr(self, t: float, img: np.ndarray) -> None:
        """A frame already at detection size (detect_width x detect_height, BGR uint8): the GPU path's."""
        n, self.n = self.n, self.n + 1
        if not n % (self.cfg.frame_skip + 1):
            self._detect(t, img)

    def _detect(self, t: float, img: np.ndarray) -> None:
        self.cuts.extend(float(c.seconds) for c in self.detector.process_frame(self._tc(t, fps=self.rate), img))
        if self.transitions is not None:
            self.transitions.push(t, cv2.resize(img, _THUMB, interpolation=cv2.INTER_AREA)[..., ::-1])

    def close(self, duration: float) -> None:
        """The stream ended at `duration`: flush the detector's pending cuts, judge the last frames."""
        self.cuts.extend(float(c.seconds) for c in self.detector.post_process(self._tc(float(duration), fps=self.rate)))
        if self.transitions is not None:
            self.transitions.judge_rest()

    def finish(self, duration: float) -> tuple[list[float], list[tuple[float, float]]]:
        """(hard cuts strictly inside the video, transition intervals). A cut may lie inside a transition (a
        fade's black frames cut to): `segmentation.shots_from_cuts` folds it into the transition."""
        self.close(duration)
        cuts = sorted({round(c, 6) for c in self.cuts if 0.0 < c < duration})
        trans = self.transitions.finish(duration, cuts) if self.transitions is not None else []
        return cuts, trans
