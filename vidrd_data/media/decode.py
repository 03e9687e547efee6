"""Decode exact frames from a video file in-process (PyAV): a clip of N frames at a target fps and size.

Frames are picked by presentation time, never by index, so variable-frame-rate sources come out right:
target time t_i = start + i / fps takes the frame *on screen* at t_i (the last frame whose timestamp is
<= t_i), which is what a player shows and what ffmpeg's fps filter approximates. One seek to the keyframe
before `start`, then one decoding pass; only the picked frames are converted (scale + RGB, with a cached
scaler), which is where an in-process decoder beats one ffmpeg process per clip. `decode_spans` cuts all
the clips of a video in that one pass, seeking ahead only where a keyframe lets it skip decoding.
Frames no target can land on and that no other frame references (B-frames, mostly) are not decoded at all
(the decoder's skip_frame=NONREF, set packet by packet, in MP4/MOV and Matroska): cutting bikes.mp4 (H.264,
70 % B-frames) at 8 fps decodes 170 of its 245 frames. The picked frames are the same ones, bit for bit.

Times are seconds from the video stream's first timestamp (ffprobe's `start_time`), the same clock as
`VideoInfo.duration`. Rotation metadata is honoured (frames come out as displayed), so are non-square
pixels; `size=[w, h]` scales to cover and center-crops.
"""

from __future__ import annotations

import bisect
import heapq
import math
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidrd_data.item_guard import LimitExceeded, check_input_file

_EPS = 1e-4  # timestamps are rounded to the stream's time base; half a 10 kHz tick is far below any frame step
_SEEK_GAP_S = 4.0  # without a keyframe index: jump ahead by seeking when the next time is further than this
MAX_FRAME_BUFFER_MB = 1024.0  # default cap on one decoded frame buffer (N x H x W x 3 bytes) of one item
# Packets read ahead of the decoder (and as many already sent): the smallest timestamp after a frame's among
# them bounds when the next frame shows (H.264 reorders at most 16 frames; any later frame's timestamp is a
# safe bound, only less tight). The next frame in display order is often a reference frame sent before.
_LOOKAHEAD = 32
# Decoders whose skip_frame=NONREF drops exactly the frames nothing references, and whose frames carry their
# own packet's timestamp (the skip decision is made on the packet). Others decode every frame, as before.
SKIP_UNSHOWN_CODECS = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4"})
# Containers whose packets are whole frames stamped with their presentation time. AVI stores no times: its
# demuxer's guesses for reordered (B-)frames come out of the decoder out of order; an MPEG-TS packet need
# not hold one whole frame (skipping there lost frames in tests).
SKIP_UNSHOWN_FORMATS = frozenset({"mov", "mp4", "matroska", "webm"})
# Containers whose seeks land on a keyframe with the right times after it (see VideoReader.seeks). MPEG-TS has no
# index: its seeks can land a keyframe late, which `_pick` notices and backs off from.
SEEKABLE_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi", "mpegts"})
_BACK_OFF_S = (2.0, 8.0, 32.0)  # a seek that landed late is retried this far before its target, then the start
_RETIME_WINDOW = 6  # frames held to put AVI's shuffled times back in order (x264's 3 B-frames with pyramid: 3)


class DecodeError(Exception):
    """The requested frames cannot be decoded (corrupt or truncated data, span past the end)."""


@dataclass
class DecodedSpan:
    frames: np.ndarray  # uint8 (N, H, W, 3) RGB
    source_times: list[float]  # timestamp of the source frame behind each output frame


def check_frame_buffer(count: int, frame_shape: Sequence[int], max_mb: float | None, what: str = "frames") -> None:
    """Refuse (LimitExceeded, rule too_large) a buffer of `count` uint8 frames over `max_mb`, before allocating it."""
    limit = MAX_FRAME_BUFFER_MB if max_mb is None else max_mb
    mb = count * math.prod(int(x) for x in frame_shape) / 2**20
    if mb > limit:
        shape = "x".join(str(int(x)) for x in frame_shape)
        raise LimitExceeded(f"too_large: {what}: {count} frames of {shape} = {mb:.0f} MB > max_frame_buffer_mb {limit:g}")


def cover_crop_size(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[int, int]:
    """Size to scale (src_w, src_h) to so that it covers (dst_w, dst_h) with the aspect ratio kept."""
    scale = max(dst_w / src_w, dst_h / src_h)
    return max(dst_w, round(src_w * scale)), max(dst_h, round(src_h * scale))


class RgbScaler:
    """Frame -> uint8 RGB array at a size: scaled in the frame's own pixel format, then converted unscaled.

    swscale's combined scale + RGB conversion measured 3-4x slower than the two steps (640x360 -> 455x256:
    1.6 ms vs 0.4 ms CPU per frame); the unscaled conversion upsamples chroma
    without a filter, which the clip's yuv420p encode discards again. Each step keeps its cached context.
    """

    def __init__(self):
        self._scale, self._rgb = VideoReformatter(), VideoReformatter()

    def __call__(self, frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
        if (frame.width, frame.height) != (width, height):
            frame = self._scale.reformat(frame, width=width, height=height, interpolation="AREA")
        return self._rgb.reformat(frame, format="rgb24").to_ndarray()


class VideoReader:
    """An open video stream with its clock, rotation and the frame -> RGB array conversion."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        self.path = Path(path)
        check_input_file(self.path)  # a FIFO or device would block or stream forever: never opened
        self.threads = threads
        self._open()
        s = self.stream
        self.tb = s.time_base
        self._tb = float(s.time_base)  # float math per frame: Fraction arithmetic showed in profiles
        self.t0 = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        rate = s.average_rate or s.guessed_rate or s.base_rate
        self.frame_step = 1.0 / float(rate) if rate else 1 / 25
        self.rotation: int | None = None  # read from the first frame's display matrix
        sar = s.sample_aspect_ratio
        self.sar = float(sar) if sar and float(sar) > 0 else 1.0
        self.errors = 0
        self.codec = s.codec_context.name
        self._scaler = RgbScaler()  # keeps its scaling contexts between frames (~2.5x faster)

    def _open(self) -> None:
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as err:
            raise DecodeError(f"cannot open {self.path.name}: {err}") from None
        if not self.container.streams.video:
            self.container.close()
            raise DecodeError(f"no video stream in {self.path.name}")
        self.stream = self.container.streams.video[0]
        cc = self.stream.codec_context
        cc.thread_count = self.threads
        if self.threads != 1:
            cc.thread_type = "AUTO"
        self._skipping = False  # the decoder's skip_frame is NONREF

    def rewind(self) -> None:
        """Back to the first packet: the file opened afresh (a seek to the start can miss like any other)."""
        self.container.close()
        self._open()

    def close(self) -> None:
        self.container.close()

    def seek(self, t: float) -> bool:
        """Position before the keyframe at or before source time t; False (and no seek) near the start or
        where the container does not seek reliably (`seeks`)."""
        if t <= self.frame_step or not self.seeks:
            return False
        try:
            self.container.seek(int((t + self.t0) / self.tb), stream=self.stream, backward=True)
        except av.FFmpegError:
            self.container.seek(0, stream=self.stream)
        return True

    def frames(self, max_errors: int = 8, unshown: Callable[[float, float], bool] | None = None):
        """Decoded frames in display order with their time, tolerating a few damaged packets (concealed).

        `unshown(t, t_next)`: True when the caller has no use for a frame shown from t until t_next; such a
        frame is then not decoded if no other frame references it. Never before this pass's first frame
        (it stands in for targets before it), only where `can_skip_unshown`, and no more once frames come out
        of the decoder with times out of order.
        """
        timed = self._decoded(max_errors, unshown if self.can_skip_unshown else None)
        if not self.retimes:
            for pts, frame in timed:
                yield pts * self._tb - self.t0, frame
            return
        # AVI stores no presentation times: the demuxer's guesses reach the decoder in file (decode) order,
        # and with B-frames the frames come out in display order carrying each other's times, shuffled
        # within a few frames. The times as a set are right: the n-th frame out gets the n-th smallest.
        held: deque = deque()
        times: list[int] = []
        for pts, frame in timed:
            held.append(frame)
            heapq.heappush(times, pts)
            if len(held) > _RETIME_WINDOW:
                yield heapq.heappop(times) * self._tb - self.t0, held.popleft()
        while held:
            yield heapq.heappop(times) * self._tb - self.t0, held.popleft()

    def _decoded(self, max_errors: int, unshown: Callable[[float, float], bool] | None):
        """(pts, frame) as the decoder returns them; skipping unshown unreferenced frames where asked."""
        packets = self.container.demux(self.stream)
        ahead: deque = deque()
        sent: deque = deque(maxlen=_LOOKAHEAD)  # timestamps of the packets already decoded
        shown_any, last = False, None
        try:
            while True:
                if unshown is None:
                    packet = next(packets, None)
                else:  # keep a window of later packets: their timestamps bound when the next frame shows
                    while len(ahead) < _LOOKAHEAD:
                        nxt = next(packets, None)
                        if nxt is None:
                            break
                        ahead.append(nxt)
                    packet = ahead.popleft() if ahead else None
                if packet is None:
                    return
                if unshown is not None:
                    self._skip_unreferenced(shown_any and packet.pts is not None
                                            and self._unshown(packet.pts, ahead, sent, unshown))
                    sent.append(packet.pts)
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.errors += 1
                    if self.errors > max_errors:
                        raise DecodeError(f"{self.path.name}: more than {max_errors} damaged packets; "
                                          "the file is corrupt") from None
                    continue
                for frame in decoded:
                    pts = frame.pts if frame.pts is not None else frame.dts  # some AVI muxes carry only dts
                    if pts is None:
                        continue
                    if last is not None and pts < last:  # out-of-order times: packet times cannot be trusted
                        unshown = None
                        self._skip_unreferenced(False)
                    shown_any, last = True, pts
                    yield pts, frame
        finally:
            self._skip_unreferenced(False)

    @property
    def _formats(self) -> set[str]:
        return set(self.container.format.name.split(","))

    @property
    def seeks(self) -> bool:
        """The container's seeks land on a keyframe and the frames after it carry their own times (MP4/MOV,
        Matroska/WebM, AVI by their index; MPEG-TS by searching, sometimes a keyframe late: `_pick` checks).
        Elsewhere (MPEG-PS, FLV, raw streams) frames after a seek came with wrong times: `seek` does nothing
        there and the video is decoded straight through."""
        return bool(SEEKABLE_FORMATS & self._formats)

    @property
    def retimes(self) -> bool:
        """AVI with B-frames (the decoder reorders): see `frames`. Without them, times already come in order."""
        return "avi" in self._formats and bool(self.stream.codec_context.has_b_frames)

    @property
    def can_skip_unshown(self) -> bool:
        return (self.stream.codec_context.thread_count == 1 and self.codec in SKIP_UNSHOWN_CODECS
                and bool(SKIP_UNSHOWN_FORMATS & self._formats))

    def _unshown(self, pts: int, ahead: deque, sent: deque, unshown: Callable[[float, float], bool]) -> bool:
        later = [q.pts for q in ahead if q.pts is not None and q.pts > pts]
        if not later:  # nothing after it in the window: it may be the last frame
            return False
        shows_next = min(min(later), min((p for p in sent if p is not None and p > pts), default=later[0]))
        return unshown(pts * self._tb - self.t0, shows_next * self._tb - self.t0)

    def _skip_unreferenced(self, on: bool) -> None:
        if on != self._skipping:
            self.stream.codec_context.skip_frame = "NONREF" if on else "DEFAULT"
            self._skipping = on

    def to_array(self, frame: av.VideoFrame, size: Sequence[int] | None) -> np.ndarray:
        if self.rotation is None:
            self.rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
        quarter = self.rotation // 90 if self.rotation % 90 == 0 else 0
        cw, ch = frame.width, frame.height
        dw, dh = (round(cw * self.sar), ch) if quarter % 2 == 0 else (ch, round(cw * self.sar))
        if size is None:
            tw, th = dw, dh
            rw, rh = dw, dh
        else:
            tw, th = int(size[0]), int(size[1])
            rw, rh = cover_crop_size(dw, dh, tw, th)
        sw, sh = (rw, rh) if quarter % 2 == 0 else (rh, rw)  # scale the coded picture, then rotate
        arr = self._scaler(frame, sw, sh)
        if quarter:
            arr = np.rot90(arr, k=quarter)
        y0, x0 = (rh - th) // 2, (rw - tw) // 2
        return np.ascontiguousarray(arr[y0:y0 + th, x0:x0 + tw])


def _pick(reader: VideoReader, times: Sequence[float], size, seek_gap: float | None = None,
          keyframes: Sequence[float] | None = None, skip_unshown: bool = True):
    """Yield (index, array, source time) for sorted target `times`: the frame on screen at each time.

    One decoding pass; it jumps ahead by seeking only where that skips decoding: when `keyframes` (times,
    from the probe's packet scan) put a keyframe between the current frame and the next target, else
    when the next target is more than `seek_gap` seconds ahead (None: never). With `skip_unshown`, frames
    on screen at no target are not decoded where nothing references them."""
    n, i = len(times), 0
    prev: tuple[float, av.VideoFrame] | None = None
    sought = times[0]  # seek at most once per target
    landed: float | None = sought if reader.seek(sought) else None  # a seek whose first frame is not yet seen
    backs = 0  # times the seek for `landed` was retried further back
    unshown = (lambda t, t_next: no_target_between(times, t, t_next)) if skip_unshown else None
    frames = reader.frames(unshown=unshown)
    try:
        while i < n:
            try:
                ft, frame = next(frames)
            except StopIteration:
                if landed is None:
                    break
                ft, frame = math.inf, None  # nothing after the seek: it landed past the data
            if landed is not None:
                if ft > landed + _EPS:
                    # The seek landed after the frame on screen at `landed` (MPEG-TS has no index; some files'
                    # indexes lie): that frame would be missed. Seek further back; in the end decode from the
                    # first packet, never seeking again.
                    prev = None
                    if backs < len(_BACK_OFF_S) and reader.seek(landed - _BACK_OFF_S[backs]):
                        backs += 1
                    else:
                        reader.rewind()
                        seek_gap, keyframes, landed = None, None, None
                    frames = reader.frames(unshown=unshown)
                    continue
                landed, backs = None, 0
            while i < n and times[i] < ft - _EPS:
                # the target lies before this frame: the previous frame was on screen (the very first
                # decoded frame stands in for a target before the first timestamp)
                pt, pf = prev if prev is not None else (ft, frame)
                yield i, reader.to_array(pf, size), pt
                i += 1
            prev = (ft, frame)
            if i < n and times[i] != sought and _worth_seeking(ft, times[i], seek_gap, keyframes):
                sought = times[i]
                landed, prev, frames = (sought if reader.seek(sought) else None), None, reader.frames(unshown=unshown)
        # end of stream: the last frame stays on screen for one frame step
        while i < n:
            if prev is None or times[i] > prev[0] + 1.5 * reader.frame_step:
                end = f"{prev[0] + reader.frame_step:.2f} s" if prev else "its first frame"
                raise DecodeError(f"{reader.path.name}: video data ends at {end}, before the frame at "
                                  f"{times[i]:.2f} s (file truncated or span past the end)")
            yield i, reader.to_array(prev[1], size), prev[0]
            i += 1
    except av.FFmpegError as err:
        at = f"{prev[0]:.2f} s" if prev else "the start"
        raise DecodeError(f"decoding {reader.path.name} failed after {at}: {err}") from None


def no_target_between(times: Sequence[float], t: float, t_next: float) -> bool:
    """True when no sorted target lands on a frame shown from t until the next frame at t_next: `_pick` gives
    target T the last frame whose time is <= T + _EPS, so that frame takes every T in [t - _EPS, t_next - _EPS)."""
    k = bisect.bisect_left(times, t - _EPS)
    return k == len(times) or times[k] >= t_next - _EPS


def _worth_seeking(now: float, target: float, seek_gap: float | None, keyframes: Sequence[float] | None) -> bool:
    if keyframes:
        k = bisect.bisect_right(keyframes, target + _EPS) - 1
        return k >= 0 and keyframes[k] > now + _EPS  # a keyframe after us and before the target
    return seek_gap is not None and target - now > seek_gap


def span_times(start: float, end: float, fps: float, frames: int | None = None) -> list[float]:
    """Target times of a clip: start + i/fps for N frames (N = `frames`, else as many as fit before `end`)."""
    n = frames if frames is not None else int(math.floor((end - start) * fps + 1e-6))
    if n <= 0:
        raise ValueError(f"span [{start:.3f}, {end:.3f}) holds no frame at {fps} fps")
    times = [start + k / fps for k in range(n)]
    if times[-1] >= end + _EPS:
        raise ValueError(f"{n} frames at {fps} fps need {n / fps:.3f} s; span [{start:.3f}, {end:.3f}) is shorter")
    return times


def decode_spans(path: str | os.PathLike, spans: Sequence[tuple[float, float]], fps: float,
                 size: Sequence[int] | None, frames: int | None = None, threads: int = 1,
                 keyframes: Sequence[float] | None = None, max_buffer_mb: float | None = None,
                 skip_unshown: bool = True) -> list[DecodedSpan | DecodeError]:
    """Several spans of one file in one decoding pass (clips of one video): each is exactly `frames`
    (default: all that fit) RGB frames at `fps` at `size` ([w, h], scale to cover + center-crop; None keeps
    the displayed size), rotation applied. A span the data does not reach gets its DecodeError instead.
    A span whose frames would need more than `max_buffer_mb` (default MAX_FRAME_BUFFER_MB) raises LimitExceeded."""
    targets = sorted((t, k, j) for k, (s, e) in enumerate(spans) for j, t in enumerate(span_times(s, e, fps, frames)))
    counts = [0] * len(spans)
    need = [sum(1 for _, k2, _ in targets if k2 == k) for k in range(len(spans))]
    arrays: list[np.ndarray | None] = [None] * len(spans)
    src: list[list[float]] = [[0.0] * n for n in need]
    results: list[DecodedSpan | DecodeError | None] = [None] * len(spans)
    reader = VideoReader(path, threads)
    try:
        for i, arr, t in _pick(reader, [t for t, _, _ in targets], size, seek_gap=_SEEK_GAP_S, keyframes=keyframes,
                               skip_unshown=skip_unshown):
            _, k, j = targets[i]
            if arrays[k] is None:
                check_frame_buffer(need[k], arr.shape, max_buffer_mb, f"span {k}")
                arrays[k] = np.empty((need[k], *arr.shape), np.uint8)
            arrays[k][j], src[k][j] = arr, t
            counts[k] += 1
            if counts[k] == need[k]:
                results[k] = DecodedSpan(arrays[k], src[k])
                arrays[k] = None
    except DecodeError as err:
        results = [r if r is not None else err for r in results]
    finally:
        reader.close()
    return results


def decode_span(path: str | os.PathLike, start: float, end: float, fps: float, size: Sequence[int] | None,
                frames: int | None = None, threads: int = 1, keyframes: Sequence[float] | None = None) -> DecodedSpan:
    """Exactly `frames` (default: all that fit) RGB frames at `fps` from [start, end) of `path`, at `size`
    ([w, h], scale to cover + center-crop; None keeps the displayed size), rotation applied."""
    out = decode_spans(path, [(start, end)], fps, size, frames, threads, keyframes)[0]
    if isinstance(out, DecodeError):
        raise out
    return out


def sample_frames_at(path: str | os.PathLike, times: Sequence[float], size: Sequence[int] | None = None,
                     threads: int = 1, max_buffer_mb: float | None = None, skip_unshown: bool = True) -> DecodedSpan:
    """The frame on screen at each of `times` (any order; sparse times far apart are reached by seeking)."""
    if not len(times):
        raise ValueError("sample_frames_at needs at least one time")
    order = sorted(range(len(times)), key=lambda k: times[k])
    sorted_times = [float(times[k]) for k in order]
    reader = VideoReader(path, threads)
    arrays: list[np.ndarray | None] = [None] * len(times)
    src = [0.0] * len(times)
    try:
        for j, arr, t in _pick(reader, sorted_times, size, seek_gap=_SEEK_GAP_S, skip_unshown=skip_unshown):
            if j == 0:  # the first frame gives the size: refuse the whole buffer before holding it
                check_frame_buffer(len(times), arr.shape, max_buffer_mb, "sampled frames")
            arrays[order[j]], src[order[j]] = arr, t
    finally:
        reader.close()
    shapes = {a.shape for a in arrays}
    frames = np.stack(arrays) if len(shapes) == 1 else arrays  # mid-stream size changes: keep a list
    return DecodedSpan(frames, src)

