"""Deduplication stages: `fingerprint` (hash the decoded picture early) and `dedup` (claim it late).

`fingerprint` hashes what identifies the content: the decoded source image (image_text: before the synthetic
motion, which differs per key) or the clip's frames. `dedup` runs after every other filter, just before
encode: it probes the build-wide index (curation_dedup_index: first occurrence in build order, seeded from
earlier builds) and filters exact copies of samples already final as `duplicate_of=<key> (exact)`;
the rest carry their fingerprint (`data["dedup_claim"]`) to the partition's writer, which gets their final
verdicts in build order before it commits. The fingerprint lands in KEY.json `details.dedup` (and the
status row's metadata), which is what seeds the index of later builds and lets users re-match offline.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from vidrd_data.curation.hashes import fingerprint
from vidrd_data.curation.index import MAX_SUPPORTED_DISTANCE
from vidrd_data.items import Item
from vidrd_data.stages.base import Stage, StageContext, StageParams, register_stage


def _pixels(item: Item) -> np.ndarray:
    if "image" in item.data:
        return np.asarray(item.data["image"])
    if "frames" in item.data:
        return np.asarray(item.data["frames"])
    raise ValueError("fingerprint needs data['image'] (after load_image) or data['frames'] (after a cut stage)")


@register_stage("fingerprint")
class Fingerprint(Stage):
    """Exact content hash + keyframe pHashes of the decoded image or clip -> data/meta `dedup`."""

    class Params(StageParams):
        pass

    requires = (("image", "frames"),)
    provides = ("fingerprint", "meta.dedup")

    def process(self, item: Item) -> list[Item]:
        fp = fingerprint(_pixels(item))
        item.data["fingerprint"] = fp
        item.meta["dedup"] = {**fp, "duplicate_of": None}
        return [item]


@register_stage("dedup")
class Dedup(Stage):
    """Claim each fingerprint in the build-wide index; later copies are filtered as duplicate_of=<key>."""

    class Params(StageParams):
        enabled: bool = True
        max_distance: int = Field(5, ge=0, le=MAX_SUPPORTED_DISTANCE)  # worst keyframe pHash distance (bits)
        near: bool = True  # False: exact content matches only
        against: list[str] = Field(default_factory=list)  # earlier build outputs whose samples come first
        scope: Literal["build"] = "build"  # one index across every source of the build

    requires = (("fingerprint", "image", "frames"),)
    provides = ("meta.dedup",)
    batch_size = 64

    @classmethod
    def active(cls, params: dict[str, Any], ctx: StageContext) -> bool:
        return bool(params.get("enabled", True))

    @classmethod
    def on_driver(cls, params: dict[str, Any], ctx: StageContext, output: str | None = None) -> None:
        """Create the index on the driver (it then lives as long as the build), seeded from earlier builds."""
        from vidrd_data.stages.curation_dedup_index import ensure_index

        p = cls.Params.model_validate(params)
        ensure_index(ctx.run_id, p.max_distance, [output] if output else [], p.against, driver=True)

    def setup(self) -> None:
        self._index = None

    def _get_index(self):
        from vidrd_data.stages.curation_dedup_index import ensure_index

        if getattr(self, "_index", None) is None:
            self._index = ensure_index(self.ctx.run_id, self.config.max_distance, [], list(self.config.against))
        return self._index

    def process_batch(self, items: list[Item]) -> list[Item]:
        from vidrd_data.stages.curation_dedup_index import index_name, probe

        live = [it for it in items if it.alive]
        claims = []
        for it in live:
            fp = it.data.pop("fingerprint", None) or fingerprint(_pixels(it))
            if not self.config.near:
                fp = {**fp, "phash": []}
            it.meta["dedup"] = {**it.meta.get("dedup", {}), **{k: fp[k] for k in ("exact", "informative")},
                                "phash": it.meta.get("dedup", {}).get("phash") or fp["phash"], "duplicate_of": None}
            claims.append((it.key, fp))
        matches = probe(self._get_index(), claims) if claims else []
        name = index_name(self.ctx.run_id, self.config.max_distance)
        for it, match, (_, fp) in zip(live, matches, claims):
            # An exact copy of a final owner is a copy for good, named as it will ever be. A near match is a
            # copy too, but an exact owner from an earlier partition may still come (exact matches are named
            # first): its writer decides, so the named owner never depends on timing.
            if match is not None and match.kind == "exact":
                mark_duplicate(it, match, self.name)
            else:
                it.data["dedup_claim"] = {"index": name, "fp": fp}  # the writer claims it, in build order
        return items


def mark_duplicate(item: Item, match, stage: str = "dedup") -> Item:
    """Filter `item` as a copy of `match.owner` (in the stage, or later by its writer)."""
    item.meta["dedup"] = {**item.meta.get("dedup", {}), "duplicate_of": match.owner, "match": match.kind,
                          "distance": match.distance}
    return item.filter(stage, match.reason())
