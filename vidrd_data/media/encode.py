"""Encode frames to the shard format's mp4 (H.264, yuv420p, CFR, even size, +faststart, no audio) in-process.

PyAV keeps encoding inside the worker: no ffmpeg process start (~65 ms) and no pipe copies per clip.
The mp4 muxer's +faststart rewrites the file to move `moov` first, which needs a real seekable file, so
we encode into a temp file in RAM-backed /dev/shm (when present) and read the bytes back.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np
from PIL import Image

_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@dataclass(frozen=True)
class EncodeSettings:
    codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 20
    threads: int = 1  # one encoder thread per worker: Ray already runs one worker per core

    def as_meta(self) -> dict:
        return {"codec": "h264", "encoder": self.codec, "preset": self.preset, "crf": self.crf,
                "pix_fmt": "yuv420p"}


def encode_mp4(frames: np.ndarray, fps: float, settings: EncodeSettings = EncodeSettings()) -> bytes:
    """frames: uint8 (T, H, W, 3) RGB with even H and W -> mp4 bytes at constant `fps`."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"encode_mp4 needs uint8 (T,H,W,3) RGB frames, got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError("encode_mp4 got zero frames")
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even dimensions, got {w}x{h}")
    fd, path = tempfile.mkstemp(suffix=".mp4", dir=_TMP)
    os.close(fd)
    try:
        rate = Fraction(fps).limit_denominator(1001)
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream(settings.codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"preset": settings.preset, "crf": str(settings.crf)}
            stream.codec_context.thread_count = settings.threads
            cv2.setNumThreads(1)  # colour conversion of one small frame: threads cost more than they save
            for frame in frames:
                for packet in stream.encode(_yuv420p_frame(frame)):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def _yuv420p_frame(rgb: np.ndarray) -> av.VideoFrame:
    """RGB -> the encoder's yuv420p (BT.601 limited range, swscale's default matrix) with OpenCV: 0.03 ms vs
    0.29 ms CPU for swscale inside encode() at 256x256 (luma equal within 1 level; 16-frame clip ~9% less CPU)."""
    return av.VideoFrame.from_ndarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420),
                                      format="yuv420p")


def encode_jpg(frame: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_mp4_bytes(data: bytes, max_buffer_mb: float | None = None) -> tuple[np.ndarray, float]:
    """mp4 bytes -> (uint8 (T,H,W,3) frames, fps). Used by checks, inspect and tests. A clip whose frames would
    exceed `max_buffer_mb` (default media.decode.MAX_FRAME_BUFFER_MB) raises LimitExceeded while decoding."""
    from vidrd_data.media.decode import check_frame_buffer

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = []
        for f in container.decode(stream):
            frames.append(f.to_ndarray(format="rgb24"))
            check_frame_buffer(len(frames), frames[-1].shape, max_buffer_mb, "decoded clip")
        fps = float(stream.average_rate or stream.guessed_rate or 0)
    return np.stack(frames), fps
