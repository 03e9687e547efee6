"""Clip captioners: `caption_blip2` (BLIP-2 on the clip's keyframes) and `caption_label` (from the class name).

Both only add candidates to meta["captions"] ("blip2", "label"); `caption_select` picks the training caption.
The label caption is a candidate like any other and the fallback when the model's caption is rejected.

caption_blip2 captions every keyframe the cut stage handed over (`cut.keyframes`: positions in the clip),
all the clips of a batch in one batched forward pass, and merges a clip's frame captions by `merge`
(captions.merge_captions: "consensus" = the frame caption sharing most words with the others, "first",
"longest"). The raw per-frame captions stay in meta["blip2"]["frames"] (json details).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidrd_data.captions import MERGE_RULES, label_to_caption, label_words, merge_captions
from vidrd_data.items import Item
from vidrd_data.stages.base import Resources, Stage, StageContext, register_stage


def _gpu_if_cluster_has_one(device: str | None) -> Resources:
    """One GPU per actor where the cluster has one (read on the driver after ray.init), else CPU."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    return Resources(num_cpus=1, num_gpus=1 if gpus >= 1 and (device or "auto") != "cpu" else 0)


@register_stage("caption_blip2")
class CaptionBlip2(Stage):
    """Keyframes -> meta.captions.blip2 (models.<model>.path: a local dir or a hub id in the local cache)."""

    uses_model = True
    batch_size = 16
    GENERATE = ("prompt", "max_new_tokens", "min_new_tokens", "num_beams", "repetition_penalty",
                "no_repeat_ngram_size")
    PARAMS = ("model", "model_key", "path", "device", "dtype", "merge", "keyframes", "batch_size", "num_actors",
              *GENERATE)

    @classmethod
    def _spec(cls, params: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
        key = params.get("model_key", params.get("model", "blip2"))
        spec = dict(ctx.models.get(key) or {})
        for k in ("path", "device", "dtype", "batch_size"):
            if params.get(k) is not None:
                spec[k] = params[k]
        spec.setdefault("key", key)
        return spec

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        from vidrd_data.models.blip2 import resolve_blip2

        if params.get("merge", "consensus") not in MERGE_RULES:
            raise ValueError(f"caption_blip2.merge must be one of {', '.join(MERGE_RULES)}, got {params.get('merge')!r}")
        resolve_blip2(cls._spec(params, ctx).get("path"), ctx.base_dir)  # a missing model fails before any work

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        return _gpu_if_cluster_has_one(cls._spec(params, ctx).get("device"))

    def __init__(self, params: dict[str, Any], ctx: StageContext):
        super().__init__(params, ctx)
        from vidrd_data.models.blip2 import Blip2Captioner, resolve_blip2

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

    PARAMS = ("template", "templates", "batch_size")

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        tpl = params.get("template")
        if tpl is not None and "{label}" not in tpl:
            raise ValueError(f"caption_label.template must contain {{label}}, got {tpl!r}")

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
