"""Hostile inputs the security tests make: a tiny video whose timestamps jump by hours, and a stage stuck in C."""

from __future__ import annotations

import ctypes
import signal
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidrd_data.stages.base import Stage


def make_gap_mkv(path: Path, gap_s: float, n: int = 6, size: tuple[int, int] = (64, 48)) -> Path:
    """A ~1 KB Matroska file: n/2 frames at 25 fps, then n/2 more `gap_s` seconds later (pts in ms)."""
    import av

    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 40 * i % 255, np.uint8), format="rgb24")
            frame.pts = int(round((i * 0.04 + (gap_s if i >= n // 2 else 0.0)) * 1000))
            frame.time_base = Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


class SleepInC(Stage):
    """A stage whose call sleeps in libc: interruptible by signals, like a decoder waiting on a read."""
    name = "sleep_in_c"

    def process(self, item):
        if item.input_id.startswith("stuck"):
            ctypes.CDLL(None).sleep(3600)
        item.data["done"] = True
        return [item]


class StuckInC(Stage):
    """A stage stuck in native code that no signal interrupts (signals blocked, then sleep in libc)."""
    name = "stuck_in_c"

    def process(self, item):
        if item.input_id.startswith("stuck"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            ctypes.CDLL(None).sleep(3600)
        item.data["done"] = True
        return [item]
