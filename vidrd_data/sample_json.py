"""The fixed KEY.json schema: the same keys and types for every sample, null where absent.

Stable types matter to outside loaders: Hugging Face `datasets` infers a WebDataset's schema from the
first five samples of the first shard, so a key that changed type (or a dict whose keys varied) would
break a load. Hence: typed, fixed fields; `scores` has a fixed set of float keys; free-form, per-stage
provenance (probe, segmentation decisions, captioner settings, rejections) is one JSON-encoded string
in `details`. `hf_features()` gives the matching `datasets.Features`, which lets one `load_dataset` call
read shards of every kind at once (each source's shards also load with no features given).
"""

from __future__ import annotations

import json
from typing import Any

from vidrd_data.items import Item

SCHEMA_VERSION = 2
CAPTION_KINDS = ("original", "blip2", "minigpt4", "label")
SCORE_KEYS = ("clip_start_end_sim", "clip_boundary_before_sim", "clip_boundary_after_sim",
              # curation signals (vidrd_data/stages/curation_*.py): null where the stage did not run
              "clip_text_sim", "aesthetic", "motion_mean", "motion_max")
VIDEO_KEYS = {"frames": int, "fps": float, "width": int, "height": int, "duration": float, "codec": str,
              "encoder": str, "preset": str, "crf": int, "pix_fmt": str}
MOTION_KEYS = {"kind": str, "zoom_start": float, "zoom_end": float, "pan": list, "pan_fraction": float,
               "easing": str, "seed": int, "upscale": float, "first_window": list, "last_window": list}
_TOP = ("source", "video", "pseudo_video", "captions", "caption_source", "label", "scores")


def _typed(d: dict | None, keys: dict[str, type]) -> dict | None:
    if d is None:
        return None
    out = {}
    for k, t in keys.items():
        v = d.get(k)
        out[k] = None if v is None else ([float(x) for x in v] if t is list else t(v))
    return out


def _float_list(v) -> list[float] | None:
    return None if v is None else [float(x) for x in v]


def sample_json(item: Item, package_version: str, config_hash: str) -> dict[str, Any]:
    m = item.meta
    src = m.get("source", {})
    captions = m.get("captions", {})
    scores = dict(m.get("scores") or {})
    details = {k: v for k, v in m.items() if k not in _TOP}
    extra_scores = {k: v for k, v in scores.items() if k not in SCORE_KEYS}
    if extra_scores:
        details["scores"] = extra_scores
    extra_source = {k: v for k, v in src.items() if k not in ("dataset", "kind", "source_id", "span", "shot_ids")}
    if extra_source:  # e.g. img2dataset's own json, the table row, the original image size
        details["source"] = extra_source
    label = m.get("label")
    return {
        "key": item.key,
        "source": {
            "dataset": str(src.get("dataset", item.source)),
            "kind": str(src.get("kind", "image")),
            "source_id": str(src.get("source_id", item.input_id)),
            "span": _float_list(src.get("span")),
            "shot_ids": None if src.get("shot_ids") is None else [int(s) for s in src["shot_ids"]],
        },
        "video": _typed(m.get("video"), VIDEO_KEYS),
        "pseudo_video": _typed(m.get("pseudo_video"), MOTION_KEYS),
        "captions": {k: (None if captions.get(k) is None else str(captions[k])) for k in CAPTION_KINDS},
        "caption_source": m.get("caption_source"),
        "label": None if label is None else str(label),
        "scores": {k: (None if scores.get(k) is None else float(scores[k])) for k in SCORE_KEYS},
        "details": json.dumps(details, ensure_ascii=False, sort_keys=True, default=str) if details else None,
        "pipeline": {"package_version": package_version, "config_hash": config_hash, "schema_version": SCHEMA_VERSION},
    }


def hf_features():
    """`datasets.Features` of our shards as the WebDataset builder sees them (mp4/jpg/txt/json members)."""
    from datasets import Features, Image, List, Value, Video

    f64, i64, s = Value("float64"), Value("int64"), Value("string")
    py = {int: i64, float: f64, str: s, list: List(f64)}
    meta = {
        "key": s,
        "source": {"dataset": s, "kind": s, "source_id": s, "span": List(f64), "shot_ids": List(i64)},
        "video": {k: py[t] for k, t in VIDEO_KEYS.items()},
        "pseudo_video": {k: py[t] for k, t in MOTION_KEYS.items()},
        "captions": {k: s for k in CAPTION_KINDS},
        "caption_source": s,
        "label": s,
        "scores": {k: f64 for k in SCORE_KEYS},
        "details": s,
        "pipeline": {"package_version": s, "config_hash": s, "schema_version": i64},
    }
    return Features({"__key__": s, "__url__": s, "mp4": Video(), "jpg": Image(), "txt": s, "json": meta})
