"""Clip captioners: `caption_blip2` (BLIP-2 on the clip's keyframes) and `caption_label` (from the class name).

Both only add candidates to meta["captions"] ("blip2", "label"); `caption_select` picks the training caption.
The label caption is a candidate like any other and the fallback when the model's caption is rejected.

caption_blip2 captions every keyframe the cut stage handed over (`cut.keyframes`: positions in the clip),
all the clips of a batch in one batched forward pass, and merges a clip's frame captions by `merge`
(captions.merge_captions: "consensus" = the frame caption sharing most words with the others, "first",
"longest"). The raw per-frame captions stay in meta["blip2"]["frames"] (json details).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from vidrd_data.captions import MERGE_RULES, label_to_caption, label_words, merge_captions
from vidrd_data.items import Item
from vidrd_data.stages.base import GenerationParams, Resources, Stage, StageContext, StageParams, register_stage


@register_stage("caption_blip2")
class CaptionBlip2(Stage):
    """Keyframes -> meta.captions.blip2 (models.<model>.path: a local dir or a hub id in the local cache)."""

    uses_model = True
    batch_size = 16
    GENERATE = ("prompt", "max_new_tokens", "min_new_tokens", "num_beams", "repetition_penalty",
                "no_repeat_ngram_size")

    class Params(GenerationParams):
        model: str = "blip2"  # the manifest's models.<model> block
        model_key: str | None = None  # the same, under its older name (wins over `model`)
        path: str | None = None  # overrides models.<model>.path
        merge: Literal[MERGE_RULES] = "consensus"  # several keyframes -> one caption (captions.merge_captions)
        prompt: str | None = None

    requires = (("keyframes", "frames"),)
    provides = ("meta.captions",)

    @classmethod
    def _spec(cls, params: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
        from vidrd_data.models.service import model_settings

        return model_settings(ctx.models, params.get("model_key") or params.get("model", "blip2"), params)

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        from vidrd_data.models.blip2 import resolve_blip2

        resolve_blip2(cls._spec(params, ctx).get("path"), ctx.base_dir)  # a missing model fails before any work

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        from vidrd_data.models.service import actor_resources

        return actor_resources(cls._spec(params, ctx).get("device"))

    def setup(self) -> None:
        from vidrd_data.models.blip2 import Blip2Captioner, resolve_blip2

        params, ctx = self.params, self.ctx
        spec = self._spec(params, ctx)
        self.model_name = spec.get("path") or "Salesforce/blip2-opt-2.7b"
        gen = {k: params[k] for k in self.GENERATE if k in params}
        self.captioner = Blip2Captioner(resolve_blip2(spec.get("path"), ctx.base_dir),
                                        device=spec.get("device", "auto"), dtype=spec.get("dtype", "auto"),
                                        batch_size=int(spec.get("batch_size", self.batch_size)), **gen)
        self.merge = params.get("merge", "consensus")
        self.max_keyframes = params.get("keyframes")

    def _keyframes(self, item: Item) -> np.ndarray:
        frames = item.data.get("keyframes")
        if frames is None:
            clip = item.data.get("frames")
            if clip is None:
                raise ValueError("caption_blip2 needs data['keyframes'] or data['frames'] (run cut before it)")
            frames = clip[[len(clip) // 2]]
        if self.max_keyframes:
            n = int(self.max_keyframes)
            if len(frames) > n:
                frames = frames[np.linspace(0, len(frames) - 1, n).round().astype(int)]
        return frames

    def process_batch(self, items: list[Item]) -> list[Item]:
        per_item = [self._keyframes(it) for it in items]
        flat = [f for frames in per_item for f in frames]
        texts = self.captioner.caption(flat)
        pos = 0
        for it, frames in zip(items, per_item):
            raw = texts[pos:pos + len(frames)]
            pos += len(frames)
            merged, reasons = merge_captions(raw, self.merge)
            # a clip whose every frame caption is rejected keeps its middle one raw: caption_select then
            # records why it was rejected instead of a silent null
            it.meta.setdefault("captions", {})["blip2"] = merged if merged is not None else raw[len(raw) // 2]
            it.meta["blip2"] = {"model": self.model_name, "prompt": self.captioner.prompt, "merge": self.merge,
                                "frames": raw, "rejected": [r for r in reasons if r] or None}
        return items

    def process(self, item: Item) -> list[Item]:
        return self.process_batch([item])


@register_stage("caption_label")
class CaptionLabel(Stage):
    """meta.label -> meta.captions.label: "PlayingGuitar" -> "a person playing guitar" (captions.label_to_caption).

    `template` ("a video of people {label}") replaces the rule for every class; `templates` maps single
    classes to their own caption where the rule reads badly. No label: the candidate stays null.
    """

    class Params(StageParams):
        template: str | None = None  # e.g. "a video of people {label}"
        templates: dict[str, str] = Field(default_factory=dict)  # class -> its own caption

        @field_validator("template")
        @classmethod
        def _has_label(cls, v: str | None) -> str | None:
            if v is not None and "{label}" not in v:
                raise ValueError(f"caption_label.template must contain {{label}}, got {v!r}")
            return v

    provides = ("meta.captions",)

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        cls.Params.model_validate(params)  # the template rule, for callers that check without building

    def process(self, item: Item) -> list[Item]:
        label = item.meta.get("label")
        caption = None
        if label:
            tpl = self.params.get("template")
            templates = self.params.get("templates") or {}
            if tpl and label not in templates:
                caption = tpl.format(label=" ".join(label_words(label)))
            else:
                caption = label_to_caption(label, templates)
        item.meta.setdefault("captions", {})["label"] = caption
        return [item]
