"""Shared helpers for the long-video tests: run stages in-process, make synthetic videos with readable time."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidrd_data.items import Item
from vidrd_data.runtime import apply_stage
from vidrd_data.stages.base import StageContext, make_stage

CODE_BITS = 10  # frame index written as black/white blocks in a band at the top of the frame
SIZE = 320


def run_stages(items: list[Item], steps: list[tuple[str, dict]], ctx: StageContext) -> list[Item]:
    """The recipe's stages in order, in this process, with the runtime's per-item failure isolation."""
    for name, params in steps:
        stage = make_stage(name, params, ctx)
        items = apply_stage(stage, items)
    return items


def code_frame(index: int, background: tuple[int, int, int]) -> np.ndarray:
    """A square frame: a smooth background plus the frame index in binary (blocks in a top band)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    img = np.empty((SIZE, SIZE, 3), np.uint8)
    for c in range(3):
        img[..., c] = np.clip(background[c] + (x + y) // 16, 0, 255)
    bw = SIZE // CODE_BITS
    for b in range(CODE_BITS):
        img[:bw, b * bw:(b + 1) * bw] = 255 if (index >> b) & 1 else 0
    return img


def read_codes(frames: np.ndarray) -> list[int]:
    """Frame indices back from decoded (any size, square) frames."""
    out = []
    for f in frames:
        bw = f.shape[1] / CODE_BITS
        band = f[: int(bw)].mean(axis=2)
        bits = [band[int(bw * 0.25):int(bw * 0.75), int((b + 0.25) * bw):int((b + 0.75) * bw)].mean() > 128
                for b in range(CODE_BITS)]
        out.append(sum(1 << b for b, on in enumerate(bits) if on))
    return out


def write_coded_video(path: Path, times: list[float], backgrounds: list[tuple[int, int, int]],
                      faststart: bool = True) -> None:
    """H.264 mp4 whose frame i is shown from times[i] (ms time base: any, also variable, frame rate)."""
    opts = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=opts) as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = SIZE
        s.pix_fmt = "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        s.options = {"preset": "ultrafast", "crf": "18", "g": "12", "bf": "0"}
        for i, (t, bg) in enumerate(zip(times, backgrounds)):
            fr = av.VideoFrame.from_ndarray(code_frame(i, bg), format="rgb24")
            fr.pts = int(round(t * 1000))
            fr.time_base = Fraction(1, 1000)
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def expected_codes(times: list[float], span_start: float, n: int, fps: float) -> list[int]:
    """The source frame on screen at span_start + k/fps: the last one whose time is <= that."""
    t = np.asarray(times)
    return [int(np.searchsorted(t, span_start + k / fps + 1e-6, side="right") - 1) for k in range(n)]
