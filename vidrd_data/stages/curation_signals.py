"""Curation signal stages: `motion` (optical flow), `clip_align` (text-video CLIP similarity), `aesthetic`
(LAION-form MLP on CLIP image embeddings). Each records its scores in meta.scores (KEY.json `scores`, the status
row's metadata) whether or not a filter is set, and filters with the rule and the measured value.

They run after caption_select and before encode (frames and the chosen caption both exist then). The model
stages run when their model is configured (`enabled: auto`): a manifest without `models.clip` gets no
alignment and no actor pool for it; `enabled: true` makes a missing model an error before any work.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from vidrd_data.curation.motion import ANALYSIS_WIDTH, flow_motion
from vidrd_data.items import Item
from vidrd_data.stages.base import ModelStageParams, Resources, Stage, StageContext, StageParams, register_stage


def _spread(n: int, k: int) -> list[int]:
    """k frame indices spread evenly over n frames (all of them when k >= n)."""
    if k >= n:
        return list(range(n))
    return [int(round(i)) for i in np.linspace(0, n - 1, k)]


def _scores(item: Item) -> dict:
    return item.meta.setdefault("scores", {})


@register_stage("motion")
class Motion(Stage):
    """Mean / max optical-flow magnitude (frame widths per second); filters near-static and extreme clips."""

    class Params(StageParams):
        width: int = Field(ANALYSIS_WIDTH, ge=16)  # analysis width (pixels): flow runs on frames this small
        stride: int = Field(1, ge=1)  # compare frames this far apart (cheaper on long clips)
        # auto: a pseudo-video's motion is computed exactly from the camera path it was rendered with (no flow
        # needed: the flow estimate of that same motion is what it approximates); flow: optical flow always
        method: Literal["auto", "flow"] = "auto"
        min_motion: float | None = Field(None, ge=0)  # motion_mean below this: filtered (near_static)
        max_motion: float | None = Field(None, gt=0)  # motion_max above this: filtered (extreme_motion)

    requires = ("frames",)
    provides = ("meta.scores",)

    def process(self, item: Item) -> list[Item]:
        p = self.config
        frames = item.data["frames"]
        known = item.data.pop("path_motion", None)
        if known is not None and p.method == "auto":
            m = dict(known)
        else:
            stride = min(p.stride, max(1, len(frames) - 1))
            m = flow_motion(frames, float(self.ctx.clip["fps"]), p.width, stride)
        _scores(item).update(m)
        if p.min_motion is not None and m["motion_mean"] < p.min_motion:
            return [item.filter(self.name, f"near_static: motion_mean {m['motion_mean']:.4f} < min_motion {p.min_motion}")]
        if p.max_motion is not None and m["motion_max"] > p.max_motion:
            return [item.filter(self.name, f"extreme_motion: motion_max {m['motion_max']:.3f} > max_motion {p.max_motion}")]
        return [item]


class _ClipStage(Stage):
    """Shared by the CLIP-based stages: the model is the manifest's models.<clip_key>, one instance per process."""

    uses_model = True
    batch_size = 16
    model_key_param = "clip_key"

    @classmethod
    def _clip_spec(cls, params: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
        from vidrd_data.models.clip_embedder import resolve_clip_spec
        from vidrd_data.models.service import model_settings

        key = params.get("clip_key", "clip")
        return resolve_clip_spec(model_settings(ctx.models, key, params), ctx.base_dir)

    @classmethod
    def _wanted(cls, params: dict[str, Any], ctx: StageContext, key: str) -> bool:
        enabled = params.get("enabled", "auto")
        return bool(ctx.models.get(key)) if enabled == "auto" else bool(enabled)

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        from vidrd_data.models.service import actor_resources

        return actor_resources(cls._clip_spec(params, ctx).get("device", "auto"))

    def _embedder(self):
        from vidrd_data.models.clip_embedder import load_embedder

        if getattr(self, "_clip", None) is None:
            spec = self._clip_spec(self.params, self.ctx)
            self._clip = load_embedder("clip", spec, device=spec.get("device", "auto"))
        return self._clip

    def _frame_embeddings(self, items: list[Item]) -> list[np.ndarray]:
        """(k, D) normalised embeddings of k spread frames per item; reused when an earlier stage made them."""
        todo = [it for it in items if "clip_frame_emb" not in it.data]
        if todo:
            picks = [np.asarray(it.data["frames"])[_spread(len(it.data["frames"]), self.config.frames)] for it in todo]
            emb = self._embedder().embed(np.concatenate(picks))  # one batched call for every item
            off = 0
            for it, pk in zip(todo, picks):
                it.data["clip_frame_emb"] = emb[off:off + len(pk)]
                off += len(pk)
        return [it.data["clip_frame_emb"] for it in items]


@register_stage("clip_align")
class ClipAlign(_ClipStage):
    """Cosine of the caption's CLIP text embedding with the mean of the clip's frame embeddings."""

    class Params(ModelStageParams):
        enabled: bool | Literal["auto"] = "auto"  # auto: run when models.<clip_key> is configured
        clip_key: str = "clip"  # the same models.clip the long-video stage (embed_shots) uses
        frames: int = Field(4, ge=1)  # frames embedded per clip, spread evenly
        min_clip_score: float | None = None  # below this: filtered (low_clip_score); null records only

    requires = ("frames", "caption")
    provides = ("meta.scores", "clip_frame_emb")

    @classmethod
    def active(cls, params: dict[str, Any], ctx: StageContext) -> bool:
        return cls._wanted(params, ctx, params.get("clip_key", "clip"))

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        from vidrd_data.models.clip_embedder import check_clip_spec

        if cls.active(params, ctx):
            check_clip_spec(cls._clip_spec(params, ctx))

    def setup(self) -> None:
        self._embedder()

    def process_batch(self, items: list[Item]) -> list[Item]:
        from vidrd_data.curation.clip_text import embed_texts

        live = [it for it in items if it.alive]
        if not live:
            return items
        frame_emb = self._frame_embeddings(live)
        text = embed_texts(self._embedder(), [str(it.data["caption"]) for it in live])
        for it, fe, te in zip(live, frame_emb, text):
            mean = fe.mean(0)
            sim = float(mean @ te / max(np.linalg.norm(mean), 1e-12))
            _scores(it)["clip_text_sim"] = sim
            lo = self.config.min_clip_score
            if lo is not None and sim < lo:
                it.filter(self.name, f"low_clip_score: clip_text_sim {sim:.4f} < min_clip_score {lo}")
        return items

    def process(self, item: Item) -> list[Item]:
        return self.process_batch([item])


@register_stage("aesthetic")
class Aesthetic(_ClipStage):
    """LAION aesthetic MLP (models.aesthetic.path) on each spread frame's CLIP embedding; the mean is recorded."""

    class Params(ModelStageParams):
        enabled: bool | Literal["auto"] = "auto"  # auto: run when models.<model_key> is configured
        model_key: str = "aesthetic"  # models.aesthetic: {path: local .pth / .safetensors head}
        clip_key: str = "clip"  # the CLIP whose embeddings the head was trained on
        frames: int = Field(4, ge=1)
        min_aesthetic: float | None = None  # below this: filtered (low_aesthetic); null records only

    requires = ("frames",)
    provides = ("meta.scores",)

    @classmethod
    def active(cls, params: dict[str, Any], ctx: StageContext) -> bool:
        return cls._wanted(params, ctx, params.get("model_key", "aesthetic"))

    @classmethod
    def _head_path(cls, params: dict[str, Any], ctx: StageContext) -> str:
        from vidrd_data.models.service import resolve_model_file

        key = params.get("model_key", "aesthetic")
        path = (ctx.models.get(key) or {}).get("path")
        if not path:
            raise ValueError(f"aesthetic needs models.{key}.path: a local LAION aesthetic head (.pth / .safetensors)")
        return str(resolve_model_file(path, ctx.base_dir))

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        from pathlib import Path

        from vidrd_data.models.clip_embedder import check_clip_spec

        if cls.active(params, ctx):
            path = cls._head_path(params, ctx)
            if not Path(path).is_file():
                raise FileNotFoundError(f"aesthetic model not found: {path} (models.{params.get('model_key', 'aesthetic')}.path)")
            check_clip_spec(cls._clip_spec(params, ctx))

    def setup(self) -> None:
        from vidrd_data.curation.aesthetic import load_aesthetic_mlp

        self._mlp = load_aesthetic_mlp(self._head_path(self.params, self.ctx))

    def process_batch(self, items: list[Item]) -> list[Item]:
        from vidrd_data.curation.aesthetic import aesthetic_scores

        if getattr(self, "_mlp", None) is None:
            self.setup()
        live = [it for it in items if it.alive]
        if not live:
            return items
        frame_emb = self._frame_embeddings(live)
        scores = aesthetic_scores(self._mlp, np.concatenate(frame_emb))
        off = 0
        for it, fe in zip(live, frame_emb):
            value = float(scores[off:off + len(fe)].mean())
            off += len(fe)
            _scores(it)["aesthetic"] = value
            it.data.pop("clip_frame_emb", None)  # last user: embeddings never travel to the sink
            lo = self.config.min_aesthetic
            if lo is not None and value < lo:
                it.filter(self.name, f"low_aesthetic: aesthetic {value:.3f} < min_aesthetic {lo}")
        return items

    def process(self, item: Item) -> list[Item]:
        return self.process_batch([item])
