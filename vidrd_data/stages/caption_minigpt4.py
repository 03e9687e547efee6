"""Captioning stages for clips: `caption_minigpt4`, and `caption`, which picks the captioner by parameter.

`caption` exists so that a manifest chooses the captioner with an override, keeping one recipe:
    overrides: {caption: {model: minigpt4}}   # or blip2
Its parameters are `model` plus that captioner's own parameters (under the captioner's name, e.g.
`minigpt4: {max_new_tokens: 40}`, or flat). It delegates to the stage `caption_<model>` (resources, up-front
checks, batching), so the captioners themselves stay single-purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vidrd_data.items import Item
from vidrd_data.stages.base import Resources, Stage, StageContext, get_stage, register_stage

CAPTIONERS = ("minigpt4", "blip2")


def model_actor_resources(device: str | None = "auto") -> Resources:
    """One GPU per actor when the cluster has one (and the device is not pinned to cpu). Without a GPU, on
    small nodes (< 8 CPUs) an actor reserves no CPU: Ray holds an actor's CPUs for its lifetime, and this
    recipe's two pools (embed_shots, caption) would leave a 2-core node no room for the 1-CPU task stages
    between them (a hang; any fractional share hangs a 1-CPU node). Sharing cores is only slower."""
    import ray

    if not ray.is_initialized():
        return Resources(num_cpus=1)
    if ray.cluster_resources().get("GPU", 0) >= 1 and device != "cpu":
        return Resources(num_cpus=1, num_gpus=1)
    node_cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return Resources(num_cpus=1 if node_cpus and min(node_cpus) >= 8 else 0)


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
    PARAMS = ("model_key", "device", "dtype", "max_new_tokens", "min_new_tokens", "num_beams", "question",
              "repetition_penalty", "no_repeat_ngram_size", "keyframes", "batch_size", "num_actors")

    @classmethod
    def _spec(cls, params, ctx) -> dict[str, Any]:
        spec = dict(ctx.models.get(params.get("model_key", "minigpt4")) or {})
        if spec.get("path") and not Path(spec["path"]).expanduser().is_absolute():
            spec["path"] = str(Path(ctx.base_dir) / spec["path"])  # relative paths: from the build's base dir
        return spec

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        from vidrd_data.models.minigpt4 import check_minigpt4_folder

        check_minigpt4_folder(cls._spec(params, ctx).get("path"))

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        return model_actor_resources(params.get("device", cls._spec(params, ctx).get("device", "auto")))

    def __init__(self, params: dict[str, Any], ctx: StageContext):
        super().__init__(params, ctx)
        from vidrd_data.models.minigpt4 import MiniGPT4Captioner

        spec = self._spec(params, ctx)
        gen = {k: params[k] for k in ("max_new_tokens", "min_new_tokens", "num_beams", "question",
                                      "repetition_penalty", "no_repeat_ngram_size") if k in params}
        self.captioner = MiniGPT4Captioner(spec.get("path"), device=params.get("device", spec.get("device", "auto")),
                                           dtype=params.get("dtype", spec.get("dtype", "auto")), **gen)
        self.keyframes = params.get("keyframes")

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
        stage_cls.check_params(sub)
        stage_cls.check(sub, ctx)

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        stage_cls, sub = cls._delegate(params)
        res = stage_cls.resources(sub, ctx)
        # without a GPU, a CPU share only: this recipe has two actor pools (embed_shots, caption)
        return res if res.num_gpus else model_actor_resources("cpu")

    def __init__(self, params: dict[str, Any], ctx: StageContext):
        super().__init__(params, ctx)
        stage_cls, sub = self._delegate(params)
        self.inner = stage_cls(sub, ctx)

    def process_batch(self, items: list[Item]) -> list[Item]:
        return self.inner.process_batch(items)

    def process(self, item: Item) -> list[Item]:
        return self.inner.process_batch([item])
