"""Decode a shard's mp4 (PyAV) or poster jpg into a fixed-size uint8 clip (C, F, H, W)."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import av
import numpy as np
import torch
from PIL import Image


class SampleError(Exception):
    """A sample that cannot become a training clip; `reason` is the counter it is skipped under."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class ClipSpec:
    num_frames: int = 16
    frame_stride: int = 1          # in source frames; lowered (down to 1) when a clip is too short for it
    height: int = 256
    width: int = 256
    crop: str = "center"           # "center" or "random"

    def __post_init__(self):
        if self.crop not in ("center", "random"):
            raise ValueError(f"crop must be 'center' or 'random', got {self.crop!r}")
        if self.num_frames < 1 or self.frame_stride < 1:
            raise ValueError("num_frames and frame_stride must be >= 1")


def _cover_size(src_h: int, src_w: int, dst_h: int, dst_w: int) -> tuple[int, int]:
    """Smallest resize (aspect kept) that covers the target, so that a crop fills it."""
    scale = max(dst_h / src_h, dst_w / src_w)
    return max(dst_h, round(src_h * scale)), max(dst_w, round(src_w * scale))


def _crop_offsets(h: int, w: int, spec: ClipSpec, rng: random.Random) -> tuple[int, int]:
    if spec.crop == "random":
        return rng.randint(0, h - spec.height), rng.randint(0, w - spec.width)
    return (h - spec.height) // 2, (w - spec.width) // 2


def choose_frame_indices(total: int, spec: ClipSpec, rng: random.Random) -> list[int]:
    if total < spec.num_frames:
        raise SampleError("too_short", f"{total} frames < {spec.num_frames}")
    # Keep the requested stride when it fits; otherwise the largest one that does.
    stride = min(spec.frame_stride, max(1, (total - 1) // max(1, spec.num_frames - 1)))
    span = (spec.num_frames - 1) * stride + 1
    start = rng.randint(0, total - span)
    return [start + i * stride for i in range(spec.num_frames)]


def decode_video_clip(data: bytes, spec: ClipSpec, rng: random.Random, total_frames: int | None = None) -> torch.Tensor:
    """mp4 bytes -> uint8 tensor (3, num_frames, height, width). Decodes only up to the last frame needed."""
    try:
        container = av.open(io.BytesIO(data))
    except Exception as exc:  # PyAV raises several error types for broken input
        raise SampleError("decode_error", repr(exc)) from exc
    with container:
        if not container.streams.video:
            raise SampleError("decode_error", "no video stream")
        stream = container.streams.video[0]
        total = total_frames or stream.frames
        if not total:
            # Unknown length (rare for our shards, whose json says it): count by decoding once.
            total = sum(1 for _ in container.decode(stream))
            container.seek(0)
        indices = choose_frame_indices(int(total), spec, rng)
        wanted = set(indices)
        h, w = _cover_size(stream.codec_context.height, stream.codec_context.width, spec.height, spec.width)
        top, left = _crop_offsets(h, w, spec, rng)
        frames: list[np.ndarray] = []
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
                    frames.append(rgb[top : top + spec.height, left : left + spec.width])
                if i >= indices[-1]:
                    break
        except Exception as exc:
            raise SampleError("decode_error", repr(exc)) from exc
    if len(frames) != len(indices):
        raise SampleError("decode_error", f"got {len(frames)} of {len(indices)} frames (truncated video?)")
    clip = torch.from_numpy(np.stack(frames))  # F, H, W, C
    return clip.permute(3, 0, 1, 2).contiguous()


def decode_image_frame(data: bytes, spec: ClipSpec, rng: random.Random) -> torch.Tensor:
    """jpg bytes -> uint8 tensor (3, 1, height, width): an image trained as a one-frame clip."""
    try:
        image = Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as exc:
        raise SampleError("decode_error", repr(exc)) from exc
    h, w = _cover_size(image.height, image.width, spec.height, spec.width)
    image = image.resize((w, h), Image.BICUBIC)
    top, left = _crop_offsets(h, w, spec, rng)
    array = np.asarray(image)[top : top + spec.height, left : left + spec.width]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(1).contiguous()
