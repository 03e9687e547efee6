"""Stages every recipe ends with: choose the training caption, encode the clip; the picture-size rule."""

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
        max_caption_chars: int = Field(1000, ge=1)  # longer (after cleaning): filtered caption_too_long
        lowercase_first: bool = False  # given captions (original, label): lower-case the first letter
        strip_final_period: bool = False  # given captions: drop a final period

    requires = ("meta.captions",)
    provides = ("caption",)

    def process(self, item: Item) -> list[Item]:
        from vidrd_data.captions import CaptionStyle, filter_reason, select_caption

        p = self.params
        priority = list(p.get("priority", ["original", "minigpt4", "blip2", "label"]))
        candidates = item.meta.setdefault("captions", {})
        style = CaptionStyle(bool(p.get("lowercase_first", False)), bool(p.get("strip_final_period", False)))
        caption, chosen, rejected = select_caption(candidates, priority, int(p.get("max_caption_chars", 1000)), style)
        for name, value in candidates.items():  # json.captions is text or null: a NaN cell is null there too
            if value is not None and not isinstance(value, str):
                candidates[name] = None
        if rejected:
            item.meta["caption_rejections"] = rejected  # lands in json.details
        if caption is None:
            return [item.filter(self.name, filter_reason(rejected, priority))]
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


def picture_size_rule(width: int, height: int, params: dict, name: str) -> str | None:
    """The filter reason for a video picture outside params' max_side / max_pixels / min_side, else None.
    Too large is filtered (as images are), never decoded: decoding costs memory per worker."""
    max_side, max_pixels = int(params.get("max_side", 4096)), int(params.get("max_pixels", 4096 * 2304))
    min_side = int(params.get("min_side", 16))
    if max(width, height) > max_side or width * height > max_pixels:
        return (f"too_large: resolution {width}x{height} of {name} is over max_side {max_side} / "
                f"max_pixels {max_pixels}")
    if min(width, height) < min_side:
        return f"too_small: resolution {width}x{height} of {name} is under min_side {min_side}"
    return None
