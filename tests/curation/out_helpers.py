"""A small built output written through the shard-format contract (vidrd_format.ShardWriter), for the report
and export tests: two sources, committed samples with scores, filtered and failed rows, dataset_info.json."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from tests.curation.cur_helpers import moving_frames
from vidrd_data.items import Item
from vidrd_data.media.encode import encode_jpg, encode_mp4
from vidrd_data.sample_json import sample_json
from vidrd_data.sink import STATUS_COLUMNS
from vidrd_format.shards import ShardWriter

POSTER_RGB = (37, 99, 235)  # the first sample's poster: a colour the report's screenshot test looks for
CAPTIONS = ["a dog running on a sunny beach", "two people riding bikes in the park",
            "a red car driving through a busy city street", "waves crashing on rocks at sunset",
            "a child playing guitar in a small room", "snow falling on tall green trees"]


def _sample(source: str, i: int, kind: str):
    frames = moving_frames(100 * len(source) + i, 8, size=(64, 48), speed=1.0 + i)
    if i == 0 and source == "photos":
        frames[:] = POSTER_RGB
    key = f"{source}_item{i:03d}"
    caption = CAPTIONS[i % len(CAPTIONS)]
    it = Item(key=key, source=source, input_id=f"item{i:03d}")
    it.meta = {"source": {"dataset": source, "kind": kind, "source_id": f"item{i:03d}", "span": None if kind == "image" else [0.0, 1.0]},
               "video": {"frames": 8, "fps": 8.0, "width": 64, "height": 48, "duration": 1.0 + (i % 3) * 0.5, "codec": "h264"},
               "captions": {"original": caption}, "caption_source": "original",
               "scores": {"motion_mean": 0.05 * (i + 1), "motion_max": 0.08 * (i + 1), "clip_text_sim": 0.2 + 0.01 * i},
               "dedup": {"exact": f"{i:064x}", "phash": ["0" * 16], "informative": True, "duplicate_of": None}}
    return it, frames, caption


def make_output(root: Path, n: int = 6) -> Path:
    """OUT with shards photos-000000 and clips-000000 (n successes each, 2 filtered, 1 failed)."""
    shard_dir = root / "shards"
    for source, kind in (("photos", "image"), ("clips", "video")):
        stem = f"{source}-000000"
        rows = []
        with ShardWriter(str(shard_dir), stem) as w:
            for i in range(n):
                it, frames, caption = _sample(source, i, kind)
                meta = sample_json(it, "test", "cfg")
                w.add(it.key, {"mp4": encode_mp4(frames, 8.0), "jpg": encode_jpg(frames[4]),
                               "txt": caption.encode(), "json": json.dumps(meta).encode()})
                rows.append({"key": it.key, "source": source, "input_id": it.input_id, "status": "success",
                             "stage": None, "reason": None, "shard": stem, "metadata": json.dumps(meta)})
            extra = [("filtered", "dedup", f"duplicate_of={source}_item000 (near, 2 bits)"),
                     ("filtered", "motion", "near_static: motion_mean 0.0010 < min_motion 0.01"),
                     ("failed", "probe", "ValueError: cannot read header")]
            for j, (status, stage, reason) in enumerate(extra):
                it, _, _ = _sample(source, n + j, kind)
                rows.append({"key": it.key, "source": source, "input_id": it.input_id, "status": status,
                             "stage": stage, "reason": reason, "shard": stem,
                             "metadata": json.dumps(sample_json(it, "test", "cfg"))})
            buf = io.BytesIO()
            pd.DataFrame(rows, columns=STATUS_COLUMNS).to_parquet(buf, index=False)
            w.commit(buf.getvalue(), {"source": source, "committed_at": 1.0, "retry": 0})
    info = {"schema_version": 2, "package_version": "test", "config_hash": "cfg",
            "resolved": {"manifest": {"name": "curation-test", "clip": {"fps": 8, "size": [64, 48], "frames": 8}},
                         "recipes": {"photos": {"kind": "image_text", "stages": [{"stage": "dedup"}]}}}}
    (root / "dataset_info.json").write_text(json.dumps(info))
    return root


def poster_present(png: np.ndarray, rgb=POSTER_RGB, tol: int = 12) -> int:
    return int((np.abs(png[..., :3].astype(int) - np.array(rgb)).max(-1) <= tol).sum())
