"""Tiny shards in `vidrd-data build`'s format, for tests and benchmarks when no corpus is at hand.

Clips are moving colour gradients (learnable, not noise), encoded like the real ones: H.264, yuv420p, CFR.
"""

from __future__ import annotations

import io
import json
import os
import tempfile

import av
import numpy as np
import webdataset as wds
from PIL import Image


def synthetic_clip(index: int, frames: int, size: int) -> np.ndarray:
    """(F, H, W, 3) uint8: a diagonal gradient that drifts by a per-clip speed, so each clip has motion."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    speed = 0.05 + 0.03 * (index % 5)
    hue = np.array([(index * 53) % 256, (index * 97) % 256, (index * 151) % 256], np.float32) / 255
    out = []
    for f in range(frames):
        phase = (xx + yy) * 2 + f * speed
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * phase)
        out.append((255 * (0.3 * hue + 0.7 * wave[..., None] * hue[::-1])).clip(0, 255).astype(np.uint8))
    return np.stack(out)


def encode_mp4(frames: np.ndarray, fps: int = 8) -> bytes:
    # +faststart rewrites the file in place, which PyAV cannot do on a BytesIO: go through a temp file.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "clip.mp4")
        _write_mp4(path, frames, fps)
        with open(path, "rb") as f:
            return f.read()


def _write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def encode_jpg(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_sample(name: str, index: int, frames: int, size: int, fps: int = 8, kind: str = "video") -> dict:
    clip = synthetic_clip(index, frames, size)
    key = f"{name}_{index:06d}"
    caption = f"a drifting gradient number {index % 7}"
    meta = {
        "key": key,
        "source": {"dataset": name, "kind": kind, "id": str(index), "span": [0.0, frames / fps], "shot_ids": None},
        "video": {"frames": frames, "fps": fps, "width": size, "height": size, "duration": frames / fps, "codec": "h264"},
        "pseudo_video": None if kind == "video" else {"motion": "synthetic", "seed": index},
        "captions": {"original": caption, "blip2": None, "minigpt4": None, "label": None},
        "caption_source": "original",
        "scores": {"clip_similarity": None},
        "pipeline": {"version": "synthetic", "config_hash": "0"},
    }
    return {"__key__": key, "mp4": encode_mp4(clip, fps), "jpg": encode_jpg(clip[frames // 2]),
            "txt": caption.encode(), "json": json.dumps(meta).encode()}


def write_synthetic_shards(out_dir: str, name: str = "synthetic", num_shards: int = 2, per_shard: int = 4,
                           frames: int = 8, size: int = 64, fps: int = 8, kind: str = "video") -> list[str]:
    """Write `num_shards` tars of `per_shard` samples to OUT/shards/{name}-{NNNNNN}.tar; return their paths."""
    shard_dir = os.path.join(out_dir, "shards")
    os.makedirs(shard_dir, exist_ok=True)
    paths = []
    for shard in range(num_shards):
        path = os.path.join(shard_dir, f"{name}-{shard:06d}.tar")
        with wds.TarWriter(path) as sink:
            for i in range(per_shard):
                sink.write(make_sample(name, shard * per_shard + i, frames, size, fps, kind))
        paths.append(path)
    return paths
