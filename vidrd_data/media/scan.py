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
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import av
import numpy as np
from PIL import Image

from vidrd_data.media.decode import RgbScaler, cover_crop_size
from vidrd_data.media.proxy_file import FrameFile, ProxyFrames, ProxyPiece, current_node
from vidrd_data.media.shots import DetectConfig, ShotFinder, transition_intervals


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
    """Samples a frame stream on the grid t_k = k / rate (hold-previous by pts); converts only used frames.

    `start`: the first grid index it emits (a time range of the video scanned on its own)."""

    def __init__(self, rate: float, convert: Callable[[av.VideoFrame], Any], limit: int | None = None,
                 start: int = 0, samples: Any = None):
        self.rate, self.convert, self.limit, self.start = rate, convert, limit, start
        self.samples: Any = [] if samples is None else samples  # a list, or list-like (media.proxy_file.FrameFile)
        self._prev: av.VideoFrame | None = None
        self.overflow = False

    def _fill_until(self, t: float) -> None:
        """Emit the previous frame for every grid time before t."""
        if self._prev is None:
            return
        converted = None
        k = self.start + len(self.samples)
        while k / self.rate < t - 1e-9:
            if self.limit is not None and len(self.samples) >= self.limit:
                self.overflow = True
                return
            if converted is None:
                converted = self.convert(self._prev)
            self.samples.append(converted)
            k += 1

    def push(self, frame: av.VideoFrame, t: float) -> None:
        if self.overflow:
            return
        self._fill_until(t)
        self._prev = frame

    def finish(self, end_t: float) -> None:
        if not self.overflow:
            self._fill_until(end_t)
        self._prev = None


# The file proxy pays where decoding the source again costs more than writing and reading clip-size frames: on
# 2 cores, 1080p -> 256x256 (32x the pixels) built 20 % faster (median 8.5 vs 10.9 s, 1-minute source), 640x360 ->
# 256x256 (3.5x) 12 % slower (8.34 vs 7.44 s, 3-minute source, scratch on a RAM disk; 7 % with it on disk);
# alternating builds (benchmarks/bench_proxy_file.py).
PROXY_FILE_MIN_PIXEL_RATIO = 8.0
# Whole-shot output (every segmentation rule off: the clips cover about the whole video) takes the file from 3x:
# remeasured on another machine (2026-12-03), the same 640x360 source used 12 % less machine CPU with it (median
# 40.5 vs 45.7 CPU-s) and 5 % less wall, where the walls above had it slower. With the recipe's default rules the
# clips covered ~10 % of that video and the file cost 24 % more CPU in one process, so 8x stays the rule there.
# (long_video.ShotDetect.derived_params picks this one.)
WHOLE_SHOT_PROXY_FILE_MIN_PIXEL_RATIO = 3.0


@dataclass
class ScanConfig(DetectConfig):  # detection settings (cuts, transitions): vidrd_data.media.shots
    embed_fps: float = 4.0  # embedding samples per second kept during the pass
    embed_size: int = 224
    clip_fps: float | None = None  # proxy clip frames (None: keep none)
    clip_size: tuple[int, int] | None = None
    proxy_max_mb: float = 64.0  # clip frames up to this travel with the item (in memory)
    # larger (up to this): kept in a file on the scanning node's disk (media.proxy_file), given a scratch folder
    proxy_file_max_mb: float = 2048.0
    proxy_file_min_pixel_ratio: float = PROXY_FILE_MIN_PIXEL_RATIO  # ... only for sources of N x the clip's pixels
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
    proxy_file: ProxyFrames | None = None  # the same frames on disk (over proxy_max_mb, within proxy_file_max_mb)
    info: dict[str, Any] = field(default_factory=dict)
    keyframes: list[float] = field(default_factory=list)  # keyframe times: where cutting may seek
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


@dataclass
class ScanRange:
    """One time range of a video scanned on its own (intra-video parallelism).

    The pass seeks to the keyframe at `seek` (s) and decodes until `stop`; it *owns* what happens in
    [lo, hi): the cuts, transition judgements, grid samples and frame counts there. The frames before `lo`
    warm the detectors up (the previous range decodes on past its `hi` by the same amount, so every owned
    decision is taken with the history one pass would have had)."""

    seek: float | None  # None: from the start
    lo: float
    hi: float
    stop: float


@dataclass
class ScanPart:
    """What one ScanRange gives; `merge_scan_parts` joins the parts of a video into one ScanResult."""

    cuts: list[float]
    judged: tuple[list[float], list[bool], list[bool]]  # transition judgements (time, blend, dark)
    embed: list[bytes]
    proxy: list[np.ndarray] | None
    proxy_overflow: bool
    keyframes: list[float]
    decoded: int
    first_t: float  # the first decoded frame's time (a range's warm-up must reach back to its lo)
    last_t: float  # for the part that ended: the video's duration
    ended: bool  # the data ended inside this range (it is the video's last)
    errors: int
    rotation: int
    proxy_piece: ProxyPiece | None = None  # this range's proxy frames in a file (ScanHeader.proxy_dir)


@dataclass
class ScanHeader:
    """What the stream's header says, read once per video (every range uses the same)."""

    rate: float
    avg_fps: float | None
    header_frames: int | None
    header_duration: float | None
    proxy_limit: int | None  # proxy frames kept at most (None: no proxy)
    proxy_dir: str | None = None  # set: the proxy goes to files in this folder (at most proxy_limit frames)
    proxy_node: str | None = None  # ... written only by ranges scanned on this node (others: no proxy)


def _source_pixels(reader) -> int:
    cc = reader.stream.codec_context
    return int(cc.width or 0) * int(cc.height or 0)


def read_header(reader, cfg: ScanConfig, path: str, scratch: str | os.PathLike | None = None) -> ScanHeader:
    """The header's facts and the proxy's budget: in memory within proxy_max_mb; else, given a `scratch` folder
    and a source of at least proxy_file_min_pixel_ratio times the clip's pixels, in files within
    proxy_file_max_mb (and half the folder's free disk); else none (clips decoded again)."""
    from vidrd_data.item_guard import LimitExceeded

    stream = reader.stream
    avg = stream.average_rate or stream.guessed_rate
    header_duration = float(stream.duration * stream.time_base) if stream.duration else None
    claimed = max(header_duration or 0.0, (reader.container.duration or 0) / av.time_base)
    if claimed > cfg.max_video_seconds:
        raise LimitExceeded(f"too_long: {Path(path).name} claims {claimed:.0f} s > max_video_seconds "
                            f"{cfg.max_video_seconds:g}")
    limit, proxy_dir = None, None
    if cfg.clip_fps and cfg.clip_size:
        w, h = cfg.clip_size
        frame_mb = w * h * 3 / 2**20
        need_mb = (header_duration or 0) * cfg.clip_fps * frame_mb
        if need_mb <= cfg.proxy_max_mb:
            limit = int(cfg.proxy_max_mb // frame_mb)  # a lying header cannot blow the budget
        elif (scratch is not None and header_duration and need_mb <= cfg.proxy_file_max_mb
              and _source_pixels(reader) >= cfg.proxy_file_min_pixel_ratio * w * h):
            budget = min(cfg.proxy_file_max_mb, shutil.disk_usage(scratch).free / 2**20 / 2)
            if need_mb <= budget:
                limit, proxy_dir = int(budget // frame_mb), str(scratch)
    return ScanHeader(rate=float(avg or 25), avg_fps=float(avg) if avg else None,
                      header_frames=int(stream.frames) or None, header_duration=header_duration, proxy_limit=limit,
                      proxy_dir=proxy_dir, proxy_node=current_node() if proxy_dir else None)


def _grid_index(t: float, rate: float) -> int:
    """The first grid index k with k / rate >= t (0 for t = -inf: the video's start)."""
    return max(0, int(np.ceil(t * rate - 1e-9))) if t > -np.inf else 0


def check_frame_time(path: str, t: float, last_t: float, cfg: ScanConfig) -> None:
    """The per-video caps on a frame's time (docs/security.md): a jump of more than max_gap_s from the last frame
    (-inf: none yet) is corrupt data (DecodeError); past max_video_seconds, too long (LimitExceeded)."""
    from vidrd_data.item_guard import LimitExceeded
    from vidrd_data.media.decode import DecodeError

    if last_t > -np.inf and t - last_t > cfg.max_gap_s:
        raise DecodeError(f"{Path(path).name}: timestamps jump {t - last_t:.0f} s (from {last_t:.2f} s to "
                          f"{t:.2f} s; max_gap_s {cfg.max_gap_s:g}): corrupt timestamps")
    if t > cfg.max_video_seconds:
        raise LimitExceeded(f"too_long: {Path(path).name} runs past max_video_seconds {cfg.max_video_seconds:g}")


def scan_part(path: str, cfg: ScanConfig, head: ScanHeader, rng: ScanRange) -> ScanPart:
    """One decoding pass over `rng` (the whole video when it is ScanRange(None, -inf, inf, inf))."""
    from vidrd_data.media.decode import DecodeError, VideoReader

    # the short-video decoder's reader: the same clock (s from the stream's start_time) as its
    # decode_span, rotation / non-square pixels applied, a few damaged packets tolerated. One decoder thread:
    # a build runs a task per core (and a long video's ranges as tasks); measured on a 640x360 H.264 source,
    # ffmpeg's frame threads cost +27 % CPU for 10 % less wall time on an otherwise idle 2-core machine.
    reader = VideoReader(path, threads=1)
    first = rng.seek is None
    last_t, last_dur, n, first_t = (0.0 if first else -np.inf), None, 0, np.inf
    after_lo = after_hi = 0  # frames at or after lo / hi
    keys: list[float] = []
    finder = ShotFinder(cfg, head.rate)
    embed_rf, proxy_rf = RgbScaler(), RgbScaler()
    # the samplers run on past hi: if the data ends before `stop`, this range owns everything to the end
    embed = GridSampler(cfg.embed_fps, lambda f: _jpeg(f, cfg.embed_size, embed_rf, reader),
                        start=_grid_index(rng.lo, cfg.embed_fps))
    proxy, frame_file = None, None
    if head.proxy_limit is not None and (head.proxy_dir is None or head.proxy_node == current_node()):
        w, h = cfg.clip_size
        if head.proxy_dir is not None:  # a range scanned on another node keeps none: its clips decode again
            frame_file = FrameFile(Path(head.proxy_dir) / f"{_grid_index(rng.lo, cfg.clip_fps)}.u8", (h, w, 3),
                                   head.proxy_node)
        proxy = GridSampler(cfg.clip_fps, lambda f: _array(f, (w, h), proxy_rf, reader), limit=head.proxy_limit,
                            start=_grid_index(rng.lo, cfg.clip_fps), samples=frame_file)
    ended = True
    try:
        if not first:
            reader.seek(rng.seek + 1e-3)  # rng.seek is a keyframe's time: land on it, not the one before
        for t, frame in reader.frames():
            check_frame_time(path, t, last_t, cfg)  # before any sampler fills a gap with copies
            if t >= rng.stop:
                ended = False
                break
            t = max(t, last_t)  # out-of-order pts (broken mux): keep time monotone
            first_t = min(first_t, t)
            finder.push(t, frame)
            embed.push(frame, t)
            if proxy is not None:
                proxy.push(frame, t)
            last_dur = getattr(frame, "duration", None)  # in time-base units: turned into seconds once, at the end
            last_t = t
            n += 1
            after_lo += t >= rng.lo
            after_hi += t >= rng.hi
            if frame.key_frame:
                keys.append(round(t, 6))
    except av.FFmpegError as err:
        if frame_file is not None:
            frame_file.discard()
        raise DecodeError(f"decoding {Path(path).name} failed after {max(last_t, 0):.2f} s: {err}") from None
    except BaseException:
        if frame_file is not None:
            frame_file.discard()
        raise
    finally:
        reader.close()
    if n == 0 and first:
        raise DecodeError(f"{Path(path).name}: no decodable video frames")
    end_t = max(last_t, 0.0)
    if ended:  # the stream ends here: the last frame stays on screen for its duration
        last_s = float(last_dur * reader.tb) if last_dur else None
        end_t = end_t + (last_s if last_s and last_s > 0 else 1.0 / (head.avg_fps or 25.0))
        finder.close(end_t)
    hi = np.inf if ended else rng.hi
    for sampler in (embed, proxy):
        if sampler is not None:
            sampler.finish(min(end_t, hi))
            if hi < np.inf:  # what lies past hi is the next range's
                del sampler.samples[max(0, _grid_index(hi, sampler.rate) - sampler.start):]
    piece = None
    if frame_file is not None:
        try:
            piece = None if proxy.overflow or frame_file.failed else frame_file.close()
        except OSError:  # flushing the tail failed (disk full): no proxy, the clips decode again
            piece = None
        if piece is None:
            frame_file.discard()
    tf = finder.transitions
    keep = [i for i, t in enumerate(tf.times) if rng.lo <= t < hi] if tf is not None else []
    return ScanPart(cuts=[c for c in finder.cuts if rng.lo <= c < hi],
                    judged=([tf.times[i] for i in keep], [tf.blend[i] for i in keep], [tf.dark[i] for i in keep])
                    if tf is not None else ([], [], []),
                    embed=embed.samples, proxy=None if proxy is None or frame_file is not None else proxy.samples,
                    proxy_overflow=bool(proxy is not None and proxy.overflow)
                    or (head.proxy_limit is not None and proxy is None) or (frame_file is not None and piece is None),
                    keyframes=[k for k in keys if rng.lo <= k < hi], decoded=after_lo - (0 if ended else after_hi),
                    first_t=first_t, last_t=end_t, ended=ended, errors=reader.errors,
                    rotation=reader.rotation or 0, proxy_piece=piece)


def merge_scan_parts(parts: list[ScanPart], cfg: ScanConfig, head: ScanHeader) -> ScanResult:
    """The parts of one video, in time order -> the ScanResult one pass gives (up to the part that ended)."""
    upto = next((i for i, p in enumerate(parts) if p.ended), len(parts) - 1)
    parts = parts[:upto + 1]
    duration = parts[-1].last_t
    cuts = sorted({round(c, 6) for p in parts for c in p.cuts if 0.0 < c < duration})
    times = [t for p in parts for t in p.judged[0]]
    transitions = []
    if cfg.transitions and times:
        transitions = transition_intervals(cfg, times, [b for p in parts for b in p.judged[1]],
                                           [d for p in parts for d in p.judged[2]], duration, cuts)
    proxy_arr, proxy_file, overflow = None, None, any(p.proxy_overflow for p in parts)
    if head.proxy_dir is not None:
        pieces = tuple(p.proxy_piece for p in parts)
        if not overflow and all(pieces) and sum(x.count for x in pieces) <= head.proxy_limit:
            proxy_file = ProxyFrames(pieces) if sum(x.count for x in pieces) else None
        else:
            overflow = True
    else:
        frames = [f for p in parts for f in (p.proxy or [])]
        if head.proxy_limit is not None and len(frames) > head.proxy_limit:
            overflow = True
        if head.proxy_limit is not None and not overflow and frames:
            proxy_arr = np.stack(frames)
    return ScanResult(duration=duration, cuts=cuts, decoded_frames=sum(p.decoded for p in parts),
                      header_frames=head.header_frames, header_duration=head.header_duration, avg_fps=head.avg_fps,
                      embed_jpegs=[j for p in parts for j in p.embed], embed_fps=cfg.embed_fps, proxy=proxy_arr,
                      proxy_file=proxy_file,
                      info={"proxy_over_budget": bool(head.proxy_limit is not None and overflow),
                            "damaged_packets": sum(p.errors for p in parts), "rotation": parts[0].rotation,
                            "ranges": len(parts)},
                      transitions=transitions, keyframes=[k for p in parts for k in p.keyframes])


def plan_ranges(cfg: ScanConfig, duration: float, keyframes: Sequence[float], parts: int,
                min_range_s: float) -> list[ScanRange]:
    """Keyframe-aligned time ranges for `parts` passes (fewer where ranges would be shorter than
    `min_range_s` or no keyframe lies near a split point); one range: one pass over the whole video.

    Each range after the first starts decoding at its keyframe and warms its detectors up for `warm`
    seconds before it owns anything; the one before it decodes on to own those seconds (plus the look-ahead
    the detectors need) itself. So every boundary makes `warm + tail` seconds decoded twice, and the split
    points sit where each pass *decodes* an equal share, D + (parts - 1)(warm + tail) over parts: at
    k (D - warm - tail) / parts. Split at k D / parts instead, the first pass decoded warm + tail seconds more
    than the last (bench_long_video's 3-minute source: it ended 0.6 s after the other, one core idle)."""
    warm = max(2.0, 2.0 * (cfg.min_scene_len_s + cfg.transition_window_s))
    tail = cfg.min_scene_len_s + cfg.transition_window_s + 1.0  # flash filter, adaptive window, blend look-ahead
    parts = max(1, min(parts, int(duration // max(min_range_s, 2 * (warm + tail)))))
    starts: list[float] = []
    for r in range(1, parts):
        target = r * (duration - warm - tail) / parts
        k = min((k for k in keyframes if k > 0), key=lambda k: abs(k - target), default=None)
        if k is None or (starts and k - starts[-1] < warm + tail) or k >= duration - (warm + tail):
            continue
        if not starts or k > starts[-1]:
            starts.append(k)
    if not starts or starts[0] < warm + tail:
        starts = [k for k in starts if k >= warm + tail]
    if not starts:
        return [ScanRange(None, -np.inf, np.inf, np.inf)]
    bounds = [s + warm for s in starts]
    out = [ScanRange(None, -np.inf, bounds[0], bounds[0] + tail)]
    for i, s in enumerate(starts):
        hi = bounds[i + 1] if i + 1 < len(bounds) else np.inf
        out.append(ScanRange(s, bounds[i], hi, hi + tail))
    return out


def scan_video(path: str, cfg: ScanConfig, ranges: list[ScanRange] | None = None,
               run_parts: Callable[[list[ScanRange], ScanHeader], list[ScanPart]] | None = None,
               scratch: str | os.PathLike | None = None) -> ScanResult:
    """Decode once: cuts, transitions, embedding samples, the proxy. With `ranges` (plan_ranges), each range
    is a pass of its own, run by `run_parts` (default: one after another here; a build runs them as Ray
    tasks), and the parts are joined as one pass would have seen them. `scratch`: a private folder for this
    video's proxy file (over proxy_max_mb); its owner removes it once the clips are cut."""
    from vidrd_data.media.decode import VideoReader

    reader = VideoReader(path, threads=1)
    try:
        head = read_header(reader, cfg, path, scratch)
        if not reader.seeks:  # MPEG-PS, FLV…: a range could not start at its keyframe
            ranges = None
    finally:
        reader.close()
    ranges = ranges or [ScanRange(None, -np.inf, np.inf, np.inf)]
    if run_parts is None or len(ranges) == 1:
        parts = [scan_part(path, cfg, head, r) for r in ranges]
    else:
        parts = run_parts(ranges, head)
    if not _parts_cover(parts, ranges):  # a seek that missed its keyframe: one pass instead, never a guess
        parts = [scan_part(path, cfg, head, ScanRange(None, -np.inf, np.inf, np.inf))]
    return merge_scan_parts(parts, cfg, head)


def _parts_cover(parts: list[ScanPart], ranges: list[ScanRange]) -> bool:
    """Every range up to the one where the data ended started decoding at or before its keyframe (a later
    start, e.g. an MPEG-TS seek a keyframe late, would shorten the detectors' warm-up or miss what it owns)."""
    for part, rng in zip(parts, ranges):
        if rng.seek is not None and not part.first_t <= rng.seek + 1e-3:
            return False
        if part.ended:
            return True
    return True


def decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

