"""Streaming output of a sampled video: frames are appended as each clip finishes, never held all at once.

- mp4: H.264, yuv420p, constant frame rate, +faststart, the sampling settings as JSON in the container's
  `comment` tag (read it back with `read_mp4_comment`) and, by default, in a sidecar `<name>.json`.
- GIF (optional): encoded frame by frame as well (PyAV's gif encoder, 8-bit palette per frame).
- frame grid PNG (optional): one thumbnail per frame (at most `grid_thumb` pixels on the long side), a row
  per clip; the thumbnails are the only thing kept in memory until `close()`.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np
from PIL import Image

from .decode import latents_video_to_uint8  # noqa: F401  (re-exported: frames -> uint8 for write_clip)


class VideoWriter:
    """Append uint8 RGB frames (F, H, W, 3) clip by clip; `close()` (or the context manager) finishes the files."""

    def __init__(
        self,
        path: str | Path,
        fps: float = 8.0,
        metadata: Optional[dict] = None,
        sidecar: bool = True,
        gif_path: str | Path | None = None,
        grid_path: str | Path | None = None,
        grid_thumb: int = 128,
        crf: int = 18,
        preset: str = "medium",
    ):
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ValueError(f"the output video must be an .mp4 file; got {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.metadata = dict(metadata or {})
        self.sidecar = sidecar
        self.gif_path = Path(gif_path) if gif_path else None
        self.grid_path = Path(grid_path) if grid_path else None
        self.grid_thumb = grid_thumb
        self.crf, self.preset = crf, preset
        self.num_frames = 0
        self._size: Optional[tuple[int, int]] = None
        self._mp4 = self._mp4_stream = None
        self._gif = self._gif_stream = None
        self._grid_rows: list[list[Image.Image]] = []

    # -- streams are opened on the first frames, once the size is known
    def _open(self, height: int, width: int) -> None:
        if height % 2 or width % 2:
            raise ValueError(f"H.264 yuv420p needs even frame sizes; got {width}x{height}")
        self._size = (height, width)
        self._mp4 = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
        self._mp4.metadata["comment"] = json.dumps(self.metadata, sort_keys=True)
        s = self._mp4.add_stream("libx264", rate=self.fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": str(self.crf), "preset": self.preset}
        self._mp4_stream = s
        if self.gif_path is not None:
            self.gif_path.parent.mkdir(parents=True, exist_ok=True)
            self._gif = av.open(str(self.gif_path), "w", format="gif")
            g = self._gif.add_stream("gif", rate=self.fps)
            g.width, g.height, g.pix_fmt = width, height, "rgb8"
            self._gif_stream = g

    def write_clip(self, frames: np.ndarray) -> None:
        """Append one clip's frames: uint8 (F, H, W, 3) RGB."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"write_clip needs uint8 (F, H, W, 3) RGB frames; got {frames.dtype} {frames.shape}")
        if self._size is None:
            self._open(frames.shape[1], frames.shape[2])
        elif frames.shape[1:3] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {frames.shape[1:3]}")
        row = []
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            self._mp4.mux(self._mp4_stream.encode(vf))
            if self._gif is not None:
                self._gif.mux(self._gif_stream.encode(vf.reformat(format="rgb8")))
            if self.grid_path is not None:
                thumb = Image.fromarray(frame)
                thumb.thumbnail((self.grid_thumb, self.grid_thumb))
                row.append(thumb)
        if row:
            self._grid_rows.append(row)
        self.num_frames += len(frames)

    def close(self, complete: bool = True) -> None:
        """Finish the files. `complete=False` (an error stopped the video) still finishes the mp4 and GIF so
        that they play, but writes neither the grid nor the sidecar."""
        if self._mp4 is None:
            raise RuntimeError("no frames were written; nothing to close")
        self._mp4.mux(self._mp4_stream.encode())
        self._mp4.close()
        if self._gif is not None:
            self._gif.mux(self._gif_stream.encode())
            self._gif.close()
        self._mp4 = None
        if not complete:
            return
        if self.grid_path is not None:
            save_frame_grid(self._grid_rows, self.grid_path)
        if self.sidecar:
            self.sidecar_path.write_text(json.dumps({**self.metadata, "num_frames_written": self.num_frames}, indent=2))

    @property
    def sidecar_path(self) -> Path:
        return self.path.with_suffix(".json")

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._mp4 is not None:
            self.close(complete=exc_type is None)


def save_frame_grid(rows: list[list[Image.Image]], path: str | Path) -> None:
    """A PNG with one row per clip and one cell per frame."""
    if not rows:
        raise ValueError("no frames for the grid")
    cw = max(im.width for r in rows for im in r)
    ch = max(im.height for r in rows for im in r)
    ncols = max(len(r) for r in rows)
    grid = Image.new("RGB", (cw * ncols, ch * len(rows)))
    for y, r in enumerate(rows):
        for x, im in enumerate(r):
            grid.paste(im, (x * cw, y * ch))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def read_mp4_comment(path: str | Path) -> dict:
    """The JSON settings that `VideoWriter` stored in an mp4's `comment` tag."""
    with av.open(str(path)) as c:
        return json.loads(c.metadata.get("comment", "{}"))


def probe_video(path: str | Path) -> dict:
    """Decode a video completely: number of frames, size, fps and codec (what a player would see)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return {"frames": n, "width": s.codec_context.width, "height": s.codec_context.height,
                "fps": float(s.average_rate or 0), "codec": s.codec_context.name,
                "pix_fmt": s.codec_context.pix_fmt}
