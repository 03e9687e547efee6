"""The fixed KEY.json schema: the same keys for every sample, null where absent."""

from __future__ import annotations

from typing import Any

from vidrd_data.items import Item

SCHEMA_VERSION = 1
CAPTION_KINDS = ("original", "blip2", "minigpt4", "label")


def sample_json(item: Item, package_version: str, config_hash: str) -> dict[str, Any]:
    m = item.meta
    src = m.get("source", {})
    captions = m.get("captions", {})
    return {
        "key": item.key,
        "source": {
            "dataset": src.get("dataset", item.source),
            "kind": src.get("kind", "image"),
            "source_id": src.get("source_id", item.input_id),
            "span": src.get("span"),
            "shot_ids": src.get("shot_ids"),
        },
        "video": m.get("video"),
        "pseudo_video": m.get("pseudo_video"),
        "captions": {k: captions.get(k) for k in CAPTION_KINDS},
        "caption_source": m.get("caption_source"),
        "label": m.get("label"),
        "scores": m.get("scores") or None,
        "details": {k: v for k, v in m.items()
                    if k not in ("source", "video", "pseudo_video", "captions", "caption_source", "label", "scores")} or None,
        "pipeline": {"package_version": package_version, "config_hash": config_hash, "schema_version": SCHEMA_VERSION},
    }
