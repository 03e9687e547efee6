"""Stages every recipe ends with: choose the training caption, encode the clip."""

from __future__ import annotations

from pydantic import Field

from vidrd_data.items import Item
from vidrd_data.media.encode import EncodeSettings, encode_jpg, encode_mp4
from vidrd_data.stages.base import Stage, StageParams, register_stage


@register_stage("caption_select")
class CaptionSelect(Stage):
    """Clean every candidate caption, keep them all in json.captions, pick one by priority (else filter)."""

    class Params(StageParams):
        priority: list[str] = Field(["original", "minigpt4", "blip2", "label"], min_length=1)  # candidate names

    requires = ("meta.captions",)
    provides = ("caption",)

    def process(self, item: Item) -> list[Item]:
        from vidrd_data.captions import select_caption

        priority = list(self.params.get("priority", ["original", "minigpt4", "blip2", "label"]))
        candidates = item.meta.setdefault("captions", {})
        caption, chosen, rejected = select_caption(candidates, priority)
        if rejected:
            item.meta["caption_rejections"] = rejected  # lands in json.details
        if caption is None:
            why = "; ".join(f"{k}: {v}" for k, v in rejected.items()) or "no candidate captions"
            return [item.filter(self.name, f"no_usable_caption: {why}")]
        item.data["caption"] = caption
        item.meta["caption_source"] = chosen
        return [item]


@register_stage("encode")
class Encode(Stage):
    """frames -> H.264 mp4 (shard format) + middle-frame jpg poster; records json.video."""

    class Params(StageParams):
        fps: float | None = Field(None, gt=0)  # default: the clip spec's fps
        preset: str = "veryfast"  # x264 preset
        crf: int = Field(20, ge=0, le=51)

    requires = ("frames",)
    provides = ("mp4", "jpg")

    def process(self, item: Item) -> list[Item]:
        frames = item.data.pop("frames")
        fps = float(self.params.get("fps", self.ctx.clip["fps"]))
        want = self.ctx.clip.get("frames")
        if want is not None and len(frames) != want:
            raise ValueError(f"clip has {len(frames)} frames, the clip spec asks for {want}")
        settings = EncodeSettings(preset=self.params.get("preset", "veryfast"), crf=int(self.params.get("crf", 20)))
        item.data["mp4"] = encode_mp4(frames, fps, settings)
        item.data["jpg"] = encode_jpg(frames[len(frames) // 2])
        h, w = frames.shape[1:3]
        item.meta["video"] = {"frames": int(len(frames)), "fps": fps, "width": int(w), "height": int(h),
                              "duration": round(len(frames) / fps, 6), **settings.as_meta()}
        item.data.pop("keyframes", None)
        return [item]
