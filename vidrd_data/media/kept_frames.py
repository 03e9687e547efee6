"""Frames a shot-detection pass already decoded, kept for the cut of the same video in the same worker.

`detect_shots` decodes every frame of a short video to find its cuts; `cut` then needs a few of them (the clip
fps) inside the spans `plan_clips` chose from those shots. Both run in one chunk task, stage after stage, so
the detection pass can keep what it decoded (the decoder's own frames at source size: no copy, ~1.5 bytes per
pixel) up to a byte budget per worker, and cut converts the frames it picks instead of decoding the file a
second time. It picks by `decode._pick`'s rule (the frame on screen at each target time) and converts with the
same reader's scaler, so the clips are bit for bit those a second decoding gives. What was not kept (over the
budget, a damaged file, another worker, a retry) is decoded again, as before.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import av
import numpy as np

from vidrd_data.media.decode import _EPS, DecodedSpan, DecodeError, VideoReader, check_frame_buffer, span_times

_KEPT: dict[str, "KeptFrames"] = {}


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@dataclass
class KeptFrames:
    """One video's decoded frames in display order, with the reader that decoded them (clock, rotation,
    pixel aspect and scaler for the conversion)."""
    path: str
    reader: VideoReader
    budget: int  # bytes this video may hold (what the worker's budget had left when it started)
    times: list[float] = field(default_factory=list)
    frames: list[av.VideoFrame] = field(default_factory=list)
    nbytes: int = 0
    identity: tuple[int, int] | None = None
    dropped: bool = False  # over the budget or times went backwards: nothing is kept, the cut decodes again

    def add(self, t: float, frame: av.VideoFrame) -> bool:
        """Keep one frame; False (and nothing kept any more) once the budget is spent or times go backwards."""
        if self.dropped:
            return False
        self.nbytes += sum(p.buffer_size for p in frame.planes)
        if self.nbytes > self.budget or (self.times and t < self.times[-1]):
            self.dropped = True
            self.times, self.frames = [], []  # the decoder's buffers go back now, not when the video ends
            return False
        self.times.append(t)
        self.frames.append(frame)
        return True

    @property
    def complete(self) -> bool:
        return not self.dropped and bool(self.frames)


def in_use_bytes() -> int:
    return sum(k.nbytes for k in _KEPT.values())


def start(path: str, reader: VideoReader, budget_mb: float) -> KeptFrames | None:
    """A collector for `path`'s frames within what the worker's budget has left; None where nothing is left."""
    left = int(budget_mb * 2**20) - in_use_bytes()
    return KeptFrames(str(path), reader, left, identity=_identity(str(path))) if left > 0 else None


def keep(kept: KeptFrames) -> None:
    """The detection pass went through the whole video: its frames wait for the cut."""
    if kept.complete:
        _KEPT[kept.path] = kept


def take(path: str) -> KeptFrames | None:
    """The kept frames of `path` (handed out once), if the file is still the one they came from."""
    kept = _KEPT.pop(str(path), None)
    if kept is None or kept.identity is None or kept.identity != _identity(str(path)):
        return None
    return kept


def clear() -> None:
    """Forget what no cut took (a video filtered after detection): a new chunk starts."""
    _KEPT.clear()


def cut_kept(kept: KeptFrames, spans: Sequence[tuple[float, float]], fps: float, size: Sequence[int] | None,
             frames: int | None = None, max_buffer_mb: float | None = None) -> list[DecodedSpan | DecodeError]:
    """`decode.decode_spans` on the kept frames: each target time takes the last frame whose time is at or
    before it (the first frame stands in for a target before it); past the last frame, that frame stays on
    screen for 1.5 frame steps, later targets are past the data."""
    reader, times = kept.reader, kept.times
    out: list[DecodedSpan | DecodeError] = []
    for s, e in spans:
        targets = span_times(s, e, fps, frames)
        arrays: np.ndarray | None = None
        src: list[float] = []
        try:
            for j, t in enumerate(targets):
                k = max(0, bisect.bisect_right(times, t + _EPS) - 1)
                if k == len(times) - 1 and t > times[k] + 1.5 * reader.frame_step:
                    raise DecodeError(f"{reader.path.name}: video data ends at {times[k] + reader.frame_step:.2f} "
                                      f"s, before the frame at {t:.2f} s (file truncated or span past the end)")
                arr = reader.to_array(kept.frames[k], size)
                if arrays is None:
                    check_frame_buffer(len(targets), arr.shape, max_buffer_mb, f"span {len(out)}")
                    arrays = np.empty((len(targets), *arr.shape), np.uint8)
                arrays[j] = arr
                src.append(times[k])
        except DecodeError as err:
            out.append(err)
            continue
        except av.FFmpegError as err:
            out.append(DecodeError(f"converting a kept frame of {reader.path.name} failed: {err}"))
            continue
        out.append(DecodedSpan(arrays, src))
    return out
