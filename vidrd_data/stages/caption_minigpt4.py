"""Captioning stages for clips: `caption_minigpt4`, and `caption`, which picks the captioner by parameter.

`caption` exists so that a manifest chooses the captioner with an override, keeping one recipe:
    overrides: {caption: {model: minigpt4}}   # or blip2
Its parameters are `model` plus that captioner's own parameters (under the captioner's name, e.g.
`minigpt4: {max_new_tokens: 40}`, or flat). It delegates to the stage `caption_<model>` (resources, up-front
checks, batching), so the captioners themselves stay single-purpose.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ConfigDict, ValidationError

from vidrd_data.items import Item
from vidrd_data.stages.base import GenerationParams, Resources, Stage, StageContext, StageParams, get_stage, register_stage

CAPTIONERS = ("minigpt4", "blip2")


def keyframes_of(item: Item, n: int | None = None) -> np.ndarray:
    """The clip's keyframes (cut_segments sets them), else frames evenly spread over data["frames"]."""
    frames = item.data.get("keyframes")
    if frames is None:
        frames = item.data.get("frames")
        if frames is None:
            raise ValueError("no keyframes or frames to caption (run cut_segments before caption)")
        n = n or 1
    if n is None or len(frames) <= n:
        return frames
    idx = [len(frames) // 2] if n == 1 else np.linspace(0, len(frames) - 1, n).round().astype(int)
    return frames[idx]


@register_stage("caption_minigpt4")
class CaptionMiniGPT4(Stage):
    """Keyframes -> meta.captions.minigpt4 with the MiniGPT-4 prompt (models.minigpt4.path)."""

    uses_model = True
    batch_size = 8
    GENERATE = ("max_new_tokens", "min_new_tokens", "num_beams", "question", "repetition_penalty",
                "no_repeat_ngram_size")

    class Params(GenerationParams):
        model_key: str = "minigpt4"  # the manifest's models.<model_key> block
        path: str | None = None  # overrides models.<model_key>.path
        question: str | None = None

    requires = (("keyframes", "frames"),)
    provides = ("meta.captions",)

    @classmethod
    def _spec(cls, params, ctx) -> dict[str, Any]:
        from vidrd_data.models.service import model_settings

        return model_settings(ctx.models, params.get("model_key", "minigpt4"), params)

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        from vidrd_data.models.minigpt4 import check_minigpt4_folder

        check_minigpt4_folder(cls._spec(params, ctx).get("path"), ctx.base_dir)

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        from vidrd_data.models.service import actor_resources

        return actor_resources(cls._spec(params, ctx).get("device"))

    def setup(self) -> None:
        from vidrd_data.models.minigpt4 import MiniGPT4Captioner, check_minigpt4_folder

        spec = self._spec(self.params, self.ctx)
        gen = {k: self.params[k] for k in self.GENERATE if k in self.params}
        self.captioner = MiniGPT4Captioner(check_minigpt4_folder(spec.get("path"), self.ctx.base_dir),
                                           device=spec.get("device", "auto"), dtype=spec.get("dtype", "auto"), **gen)
        self.keyframes = self.params.get("keyframes")

    def process_batch(self, items: list[Item]) -> list[Item]:
        clips = [keyframes_of(it, self.keyframes) for it in items]
        for it, text in zip(items, self.captioner.caption(clips)):
            it.meta.setdefault("captions", {})["minigpt4"] = text
        return items

    def process(self, item: Item) -> list[Item]:
        return self.process_batch([item])


@register_stage("caption")
class Caption(Stage):
    """Delegates to `caption_<model>`; `model` selects MiniGPT-4 or BLIP-2 (a manifest override)."""

    uses_model = True
    batch_size = 8

    class Params(StageParams):
        # the delegate's own parameters, flat or under its name, are checked by the delegate's Params
        model_config = ConfigDict(extra="allow")
        model: str = "minigpt4"  # minigpt4 | blip2
        minigpt4: dict[str, Any] | None = None
        blip2: dict[str, Any] | None = None

    requires = (("keyframes", "frames"),)
    provides = ("meta.captions",)

    @staticmethod
    def _delegate(params: dict[str, Any]) -> tuple[type[Stage], dict[str, Any]]:
        model = params.get("model", "minigpt4")
        if model not in CAPTIONERS:
            raise ValueError(f"caption.model must be one of {', '.join(CAPTIONERS)}, got {model!r}")
        try:
            cls = get_stage(f"caption_{model}")
        except KeyError:
            raise ValueError(f"caption.model {model!r}: stage caption_{model} is not installed in this checkout") from None
        flat = {k: v for k, v in params.items() if k != "model" and k not in CAPTIONERS}
        return cls, flat | dict(params.get(model) or {})

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        stage_cls, sub = cls._delegate(params)
        try:
            stage_cls.validate(sub, ctx)
        except ValidationError as exc:  # name the captioner whose parameters are wrong, and what it accepts
            errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"caption (model {stage_cls.name.removeprefix('caption_')}): {errors}; "
                             f"allowed: {', '.join(stage_cls.Params.model_fields)}") from None

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        stage_cls, sub = cls._delegate(params)
        return stage_cls.resources(sub, ctx)

    def setup(self) -> None:
        stage_cls, sub = self._delegate(self.params)
        self.inner = stage_cls(sub, self.ctx)
        self.inner.setup()

    def process_batch(self, items: list[Item]) -> list[Item]:
        return self.inner.process_batch(items)

    def process(self, item: Item) -> list[Item]:
        return self.inner.process_batch([item])
