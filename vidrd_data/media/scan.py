"""One decoding pass over a long video: shot cuts, embedding samples and (budget allowing) the clip frames.

Decoding dominates the cost of segmenting a long video, so everything the later stages need is taken from
a single pass: PySceneDetect's detectors see a downscaled copy of every (or every n-th) frame, a few
frames per second are kept (JPEG in memory) for the shot embeddings, and, when the whole video at the
clip's fps and size fits `proxy_max_mb`, the clip frames themselves, so cutting needs no second decode.

Time is read from each frame's presentation timestamp, never from frame counts: variable-frame-rate files
and files whose header claims more frames than they hold get true times. A grid sample at time t shows the
last frame whose pts <= t (what a player shows at t). Times are seconds from the stream's start_time,
the clock of `vidrd_data.media.decode` (whose reader this pass uses), so its decode_span cuts the same spans.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import av
import numpy as np
from PIL import Image

from vidrd_data.media.decode import RgbScaler, cover_crop_size
from vidrd_data.media.shots import DetectConfig, ShotFinder


def to_rgb_cover(frame: av.VideoFrame, size: tuple[int, int], scaler: RgbScaler | None = None) -> np.ndarray:
    """Resize (swscale, in C) so the frame covers `size` = (w, h), then center-crop: uint8 (h, w, 3).

    Pass one `RgbScaler` per output size: it caches its swscale contexts (a fresh one per frame costs ~3x).
    """
    w, h = size
    sw, sh = cover_crop_size(frame.width, frame.height, w, h)
    img = (scaler or RgbScaler())(frame, sw, sh)
    y0, x0 = (sh - h) // 2, (sw - w) // 2
    return np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])


class GridSampler:
    """Samples a frame stream on the grid t_k = k / rate (hold-previous by pts); converts only used frames."""

    def __init__(self, rate: float, convert: Callable[[av.VideoFrame], Any], limit: int | None = None):
        self.rate, self.convert, self.limit = rate, convert, limit
        self.samples: list[Any] = []
        self._prev: av.VideoFrame | None = None
        self.overflow = False

    def _fill_until(self, t: float) -> None:
        """Emit the previous frame for every grid time before t."""
        if self._prev is None:
            return
        converted = None
        while len(self.samples) / self.rate < t - 1e-9:
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
class ScanConfig(DetectConfig):  # detection settings (cuts, transitions): vidrd_data.media.shots
    embed_fps: float = 4.0  # embedding samples per second kept during the pass
    embed_size: int = 224
    clip_fps: float | None = None  # proxy clip frames (None: keep none)
    clip_size: tuple[int, int] | None = None
    proxy_max_mb: float = 64.0
    # caps per video (docs/security.md): memory and time must follow the data, never a claimed duration
    max_video_seconds: float = 4 * 3600.0  # longer (header or timestamps): filtered too_long
    max_gap_s: float = 60.0  # a jump between consecutive frame timestamps larger than this: corrupt


@dataclass
class ScanResult:
    duration: float  # true content length: the last frame's time + its duration (not the header's claim)
    cuts: list[float]  # detected hard cuts (seconds)
    decoded_frames: int
    header_frames: int | None
    header_duration: float | None
    avg_fps: float | None
    embed_jpegs: list[bytes]  # grid k -> k / embed_fps
    embed_fps: float
    proxy: np.ndarray | None  # (K, h, w, 3) at clip_fps; grid k -> k / clip_fps; None when over budget
    info: dict[str, Any] = field(default_factory=dict)
    transitions: list[tuple[float, float]] = field(default_factory=list)  # gradual transitions [start, end)


def _array(frame: av.VideoFrame, size: tuple[int, int], reformatter: RgbScaler, reader) -> np.ndarray:
    """As displayed (the reader's rotation and pixel aspect), scaled to cover `size`, center-cropped."""
    if reader.rotation is None:
        reader.rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
    if reader.rotation or abs(reader.sar - 1.0) > 1e-3:
        return reader.to_array(frame, size)  # rare: let the decoder module handle the geometry
    return to_rgb_cover(frame, size, reformatter)  # common case, with a cached scaler (~3x faster)


def _jpeg(frame: av.VideoFrame, size: int, reformatter: RgbScaler, reader) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_array(frame, (size, size), reformatter, reader)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def scan_video(path: str, cfg: ScanConfig) -> ScanResult:
    from vidrd_data.item_guard import LimitExceeded
    from vidrd_data.media.decode import DecodeError, _Reader

    # the short-video decoder's reader: the same clock (s from the stream's start_time) as its
    # decode_span, rotation / non-square pixels applied, a few damaged packets tolerated
    reader = _Reader(path, threads=0)
    last_t, last_dur, n = 0.0, None, 0
    try:
        stream = reader.stream
        avg = stream.average_rate or stream.guessed_rate
        avg_fps = float(avg) if avg else None
        rate = avg or 25
        header_frames = int(stream.frames) or None
        header_duration = float(stream.duration * stream.time_base) if stream.duration else None
        claimed = max(header_duration or 0.0, (reader.container.duration or 0) / av.time_base)
        if claimed > cfg.max_video_seconds:
            raise LimitExceeded(f"too_long: {Path(path).name} claims {claimed:.0f} s > max_video_seconds "
                                f"{cfg.max_video_seconds:g}")

        finder = ShotFinder(cfg, float(rate))
        embed_rf, proxy_rf = RgbScaler(), RgbScaler()
        embed = GridSampler(cfg.embed_fps, lambda f: _jpeg(f, cfg.embed_size, embed_rf, reader))
        proxy = None
        if cfg.clip_fps and cfg.clip_size:
            w, h = cfg.clip_size
            expected = (header_duration or 0) * cfg.clip_fps * w * h * 3 / 2**20
            if expected <= cfg.proxy_max_mb:
                limit = int(cfg.proxy_max_mb * 2**20 // (w * h * 3))  # a lying header cannot blow the budget
                proxy = GridSampler(cfg.clip_fps, lambda f: _array(f, (w, h), proxy_rf, reader), limit=limit)

        for t, frame in reader.frames():
            if t - last_t > cfg.max_gap_s:  # checked before any sampler fills the gap with copies
                raise DecodeError(f"{Path(path).name}: timestamps jump {t - last_t:.0f} s (from {last_t:.2f} s to "
                                  f"{t:.2f} s; max_gap_s {cfg.max_gap_s:g}): corrupt timestamps")
            if t > cfg.max_video_seconds:
                raise LimitExceeded(f"too_long: {Path(path).name} runs past max_video_seconds {cfg.max_video_seconds:g}")
            t = max(t, last_t)  # out-of-order pts (broken mux): keep time monotone
            finder.push(t, frame)
            embed.push(frame, t)
            if proxy is not None:
                proxy.push(frame, t)
            dur = getattr(frame, "duration", None)
            last_dur = float(dur * reader.tb) if dur else None
            last_t = t
            n += 1
    except av.FFmpegError as err:
        raise DecodeError(f"decoding {Path(path).name} failed after {last_t:.2f} s: {err}") from None
    finally:
        reader.close()
    if n == 0:
        raise DecodeError(f"{Path(path).name}: no decodable video frames")
    frame_dur = last_dur if last_dur and last_dur > 0 else 1.0 / (avg_fps or 25.0)
    duration = last_t + frame_dur
    cuts, transitions = finder.finish(duration)
    embed.finish(duration)
    if proxy is not None:
        proxy.finish(duration)

    proxy_arr = None
    if proxy is not None and not proxy.overflow and proxy.samples:
        proxy_arr = np.stack(proxy.samples)
    return ScanResult(duration=duration, cuts=cuts, decoded_frames=n, header_frames=header_frames,
                      header_duration=header_duration, avg_fps=avg_fps, embed_jpegs=embed.samples,
                      embed_fps=cfg.embed_fps, proxy=proxy_arr,
                      info={"proxy_over_budget": bool(proxy is not None and proxy.overflow),
                            "damaged_packets": reader.errors, "rotation": reader.rotation or 0},
                      transitions=transitions)


def decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

