"""Tiny shards in `vidrd-data build`'s format, for tests and benchmarks when no corpus is at hand: written through
`vidrd_format` (the shard-format contract) with KEY.json from the data side's schema function.

Clips are moving colour gradients (learnable, not noise), encoded like the real ones: H.264, yuv420p, CFR.
"""

from __future__ import annotations

import io
import json
import os
import tempfile

import av
import numpy as np
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


def sample_meta(name: str, index: int, frames: int, size: int, fps: int, kind: str, caption: str) -> dict:
    """KEY.json built by the data side's own schema function (vidrd_data.sample_json), so it cannot drift."""
    from vidrd_data.items import Item, make_key
    from vidrd_data.sample_json import sample_json

    item = Item(key=make_key(name, f"{index:06d}"), source=name, input_id=f"{index:06d}")
    item.meta = {
        "source": {"dataset": name, "kind": kind, "source_id": str(index), "span": [0.0, frames / fps]},
        "video": {"frames": frames, "fps": fps, "width": size, "height": size, "duration": frames / fps,
                  "codec": "h264", "encoder": "libx264", "preset": "ultrafast", "crf": 18, "pix_fmt": "yuv420p"},
        "pseudo_video": None if kind == "video" else {"kind": "synthetic", "seed": index},
        "captions": {"original": caption}, "caption_source": "original",
    }
    return sample_json(item, "synthetic", "0" * 16)


def make_sample(name: str, index: int, frames: int, size: int, fps: int = 8, kind: str = "video") -> dict:
    clip = synthetic_clip(index, frames, size)
    caption = f"a drifting gradient number {index % 7}"
    meta = sample_meta(name, index, frames, size, fps, kind, caption)
    return {"__key__": meta["key"], "mp4": encode_mp4(clip, fps), "jpg": encode_jpg(clip[frames // 2]),
            "txt": caption.encode(), "json": json.dumps(meta).encode()}


def write_synthetic_shards(out_dir: str, name: str = "synthetic", num_shards: int = 2, per_shard: int = 4,
                           frames: int = 8, size: int = 64, fps: int = 8, kind: str = "video",
                           commit: bool = True) -> list[str]:
    """Write `num_shards` shards of `per_shard` samples to OUT/shards/{name}-{NNNNNN}.tar through the format
    contract's writer (vidrd_format.ShardWriter: tar, status parquet, `_stats.json` last); return the tar paths.
    `commit=False` leaves each tar in place without its commit marker, as a killed build would."""
    from vidrd_data.sink import status_parquet
    from vidrd_format.shards import SHARD_DIR, ShardWriter, shard_stem

    shard_dir = os.path.join(out_dir, SHARD_DIR)
    paths = []
    for shard in range(num_shards):
        writer = ShardWriter(shard_dir, shard_stem(name, shard))
        rows = []
        for i in range(per_shard):
            sample = make_sample(name, shard * per_shard + i, frames, size, fps, kind)
            key = sample.pop("__key__")
            writer.add(key, sample)
            rows.append({"key": key, "source": name, "input_id": f"{shard * per_shard + i:06d}", "status": "success",
                         "stage": None, "reason": None, "shard": writer.files.stem, "metadata": "{}"})
        if commit:
            writer.commit(status_parquet(rows), {"source": name, "counts": {"success": per_shard}})
        else:  # the tar in place, no parquet, no marker
            writer.tar.close()
            writer._raw.close()
            os.replace(writer._tmp, writer.files.tar)
        paths.append(writer.files.tar)
    return paths
