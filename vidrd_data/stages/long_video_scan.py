"""One decoding pass over a long video: shot cuts, embedding samples and (budget allowing) the clip frames.

Decoding dominates the cost of segmenting a long video, so everything the later stages need is taken from
a single pass: PySceneDetect's detectors see a downscaled copy of every (or every n-th) frame, a few
frames per second are kept (JPEG in memory) for the shot embeddings, and, when the whole video at the
clip's fps and size fits `proxy_max_mb`, the clip frames themselves, so cutting needs no second decode.

Time is read from each frame's presentation timestamp, never from frame counts: variable-frame-rate files
and files whose header claims more frames than they hold get true times. A grid sample at time t shows the
last frame whose pts <= t (what a player shows at t). Times are seconds from the first frame.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image


def cover_crop_size(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[int, int]:
    """Scaled size that covers dst_w x dst_h keeping the aspect ratio (then center-cropped)."""
    scale = max(dst_w / src_w, dst_h / src_h)
    return max(dst_w, round(src_w * scale)), max(dst_h, round(src_h * scale))


def to_rgb_cover(frame: av.VideoFrame, size: tuple[int, int], reformatter: VideoReformatter | None = None) -> np.ndarray:
    """Resize (swscale, in C) so the frame covers `size` = (w, h), then center-crop: uint8 (h, w, 3).

    Pass one `VideoReformatter` per output size: it caches the scaler (a fresh one per frame costs ~3x).
    """
    w, h = size
    sw, sh = cover_crop_size(frame.width, frame.height, w, h)
    img = (reformatter or VideoReformatter()).reformat(
        frame, width=sw, height=sh, format="rgb24", interpolation="AREA").to_ndarray()
    y0, x0 = (sh - h) // 2, (sw - w) // 2
    return np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])


class GridSampler:
    """Samples a frame stream on the grid t_k = k / rate (hold-previous by pts); converts only used frames."""

    def __init__(self, rate: float, convert: Callable[[av.VideoFrame], Any], limit: int | None = None,
                 start: float = 0.0):
        self.rate, self.convert, self.limit, self.start = rate, convert, limit, start
        self.samples: list[Any] = []
        self._prev: av.VideoFrame | None = None
        self.overflow = False

    def _fill_until(self, t: float) -> None:
        """Emit the previous frame for every grid time before t."""
        if self._prev is None:
            return
        converted = None
        while self.start + len(self.samples) / self.rate < t - 1e-9:
            if self.limit is not None and len(self.samples) >= self.limit:
                self.overflow = True
                return
            if converted is None:
                converted = self.convert(self._prev)
            self.samples.append(converted)

    def push(self, frame: av.VideoFrame, t: float) -> None:
        if self.overflow:
            return
        self._fill_until(t)
        self._prev = frame

    def finish(self, end_t: float) -> None:
        if not self.overflow:
            self._fill_until(end_t)
        self._prev = None


@dataclass
class ScanConfig:
    detector: str = "content"  # content | adaptive
    threshold: float = 27.0  # ContentDetector
    adaptive_threshold: float = 3.0  # AdaptiveDetector
    min_content_val: float = 15.0  # AdaptiveDetector
    window_width: int = 2  # AdaptiveDetector
    min_scene_len_s: float = 0.6
    luma_only: bool = False
    detect_width: int = 256  # frames are downscaled to this width for detection (speed; cuts survive it)
    frame_skip: int = 0  # detect on every (frame_skip+1)-th frame
    embed_fps: float = 4.0  # embedding samples per second kept during the pass
    embed_size: int = 224
    clip_fps: float | None = None  # proxy clip frames (None: keep none)
    clip_size: tuple[int, int] | None = None
    proxy_max_mb: float = 512.0


@dataclass
class ScanResult:
    duration: float  # true content length: last frame's pts + its duration, from the first frame
    cuts: list[float]  # detected hard cuts (seconds)
    decoded_frames: int
    header_frames: int | None
    header_duration: float | None
    avg_fps: float | None
    embed_jpegs: list[bytes]  # grid k -> k / embed_fps
    embed_fps: float
    proxy: np.ndarray | None  # (K, h, w, 3) at clip_fps; grid k -> k / clip_fps; None when over budget
    info: dict[str, Any] = field(default_factory=dict)


def _make_detector(cfg: ScanConfig):
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    if cfg.detector == "content":
        return ContentDetector(threshold=cfg.threshold, min_scene_len=float(cfg.min_scene_len_s),
                               luma_only=cfg.luma_only)
    if cfg.detector == "adaptive":
        return AdaptiveDetector(adaptive_threshold=cfg.adaptive_threshold, min_scene_len=float(cfg.min_scene_len_s),
                                window_width=cfg.window_width, min_content_val=cfg.min_content_val,
                                luma_only=cfg.luma_only)
    raise ValueError(f"detector must be 'content' or 'adaptive', got {cfg.detector!r}")


def _jpeg(frame: av.VideoFrame, size: int, reformatter: VideoReformatter) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_rgb_cover(frame, (size, size), reformatter)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def scan_video(path: str, cfg: ScanConfig) -> ScanResult:
    from scenedetect.common import FrameTimecode, Timecode

    detector = _make_detector(cfg)
    cuts: list[float] = []
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding is the pass's main cost
        tb = stream.time_base or Fraction(1, 90000)
        avg = stream.average_rate or stream.guessed_rate
        avg_fps = float(avg) if avg else None
        header_frames = int(stream.frames) or None
        header_duration = float(stream.duration * tb) if stream.duration else None

        embed_rf, proxy_rf, detect_rf = VideoReformatter(), VideoReformatter(), VideoReformatter()
        embed = GridSampler(cfg.embed_fps, lambda f: _jpeg(f, cfg.embed_size, embed_rf))
        proxy = None
        if cfg.clip_fps and cfg.clip_size:
            w, h = cfg.clip_size
            expected = (header_duration or 0) * cfg.clip_fps * w * h * 3 / 2**20
            if expected <= cfg.proxy_max_mb:
                limit = int(cfg.proxy_max_mb * 2**20 // (w * h * 3))  # a lying header cannot blow the budget
                proxy = GridSampler(cfg.clip_fps, lambda f: to_rgb_cover(f, (w, h), proxy_rf), limit=limit)

        t0, pts0 = None, 0
        last_t, last_dur, n = 0.0, None, 0
        det_h = None
        for frame in container.decode(stream):
            if frame.pts is None:  # no timestamp: fall back to the nominal rate
                t_abs = (t0 or 0.0) + n / (avg_fps or 25.0)
                pts, ftb = None, None
            else:
                t_abs = float(frame.pts * tb)
                pts, ftb = frame.pts, tb
            if t0 is None:
                t0, pts0 = t_abs, frame.pts or 0
            t = t_abs - t0
            if t < last_t - 1e-9:  # out-of-order pts (broken mux): keep time monotone
                t = last_t
            if n % (cfg.frame_skip + 1) == 0:
                if det_h is None:
                    det_h = max(2, round(frame.height * cfg.detect_width / frame.width / 2) * 2)
                img = detect_rf.reformat(frame, width=cfg.detect_width, height=det_h, format="bgr24",
                                         interpolation="AREA").to_ndarray()
                tc = (FrameTimecode(Timecode(pts=pts - pts0, time_base=ftb), fps=avg or 25)
                      if pts is not None else FrameTimecode(t, fps=avg or 25))
                cuts.extend(float(c.seconds) for c in detector.process_frame(tc, img))
            embed.push(frame, t)
            if proxy is not None:
                proxy.push(frame, t)
            dur = getattr(frame, "duration", None)
            last_dur = float(dur * tb) if dur else None
            last_t = t
            n += 1
        if n == 0:
            raise ValueError(f"{path}: no decodable video frames")
        frame_dur = last_dur if last_dur and last_dur > 0 else 1.0 / (avg_fps or 25.0)
        duration = last_t + frame_dur
        tc_end = FrameTimecode(float(duration), fps=avg or 25)
        cuts.extend(float(c.seconds) for c in detector.post_process(tc_end))
        embed.finish(duration)
        if proxy is not None:
            proxy.finish(duration)

    cuts = sorted({round(c, 6) for c in cuts if 0.0 < c < duration})
    proxy_arr = None
    if proxy is not None and not proxy.overflow and proxy.samples:
        proxy_arr = np.stack(proxy.samples)
    return ScanResult(duration=duration, cuts=cuts, decoded_frames=n, header_frames=header_frames,
                      header_duration=header_duration, avg_fps=avg_fps, embed_jpegs=embed.samples,
                      embed_fps=cfg.embed_fps, proxy=proxy_arr,
                      info={"proxy_over_budget": bool(proxy is not None and proxy.overflow)})


def decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def forced_cuts(start: float, end: float, max_len: float) -> list[float]:
    """Cut points that split [start, end) into equal pieces no longer than max_len."""
    if max_len <= 0 or end - start <= max_len:
        return []
    pieces = math.ceil((end - start) / max_len - 1e-9)
    step = (end - start) / pieces
    return [start + i * step for i in range(1, pieces)]


def decode_span(path: str, start: float, n_frames: int, fps: float, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Exactly `n_frames` frames on the grid start + k/fps (times from the first frame, as in scan_video).

    Used when the scan kept no proxy frames (over budget). Returns (frames, true end of the content), so a
    file that ends early (a header that over-promises) yields fewer frames rather than made-up ones.
    """
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base or Fraction(1, 90000)
        first = next(container.decode(stream))  # the file's own time origin
        pts0 = first.pts or 0
        container.seek(pts0 + max(0, int((start - 1.0) / tb)), stream=stream, backward=True)
        rf = VideoReformatter()
        sampler = GridSampler(fps, lambda f: to_rgb_cover(f, size, rf), limit=n_frames, start=start)
        end_needed = start + n_frames / fps
        last_t, last_dur = 0.0, 1.0 / float(stream.average_rate or 25)
        for frame in container.decode(stream):
            t = float(((frame.pts if frame.pts is not None else pts0) - pts0) * tb)
            if t > end_needed:
                sampler.push(frame, t)
                break
            sampler.push(frame, t)
            last_t = t
            if getattr(frame, "duration", None):
                last_dur = float(frame.duration * tb)
        else:
            sampler.finish(last_t + last_dur)
        frames = sampler.samples[:n_frames]
        if not frames:
            raise ValueError(f"{path}: no frames decoded in [{start:.3f}, {end_needed:.3f}] s")
        return np.stack(frames), last_t + last_dur
