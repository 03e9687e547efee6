"""Long-video stages: shot_detect -> embed_shots -> segment_shots -> cut_segments.

shot_detect decodes each video once (media.scan) and hands on the shots, a few frames per shot
for embedding and, within budget, the clip frames ("proxy"). embed_shots runs an image embedder (open_clip
on a Ray actor pool, GPU when the cluster has one). segment_shots applies the rules of
`vidrd_data.segmentation` and fans the video out into one item per candidate segment (dropped ones are
filtered with their rule, so each gets a status row). cut_segments turns a kept segment into exactly the
clip spec's frames, recording the true span of the content.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vidrd_data.item_guard import DEFAULT_MAX_VIDEO_FILE_BYTES
from vidrd_data.items import Item, make_key
from vidrd_data.media.decode import check_frame_buffer
from vidrd_data.segmentation import SegmentRules, Shot, grid_frames, grid_span, segment_shots, shots_from_cuts
from vidrd_data.stages.base import ModelStageParams, Resources, Stage, StageContext, StageParams, register_stage
from vidrd_data.media.scan import ScanConfig, decode_jpeg, scan_video

_EPS = 1e-6
_RUNTIME_KEYS = ("batch_size", "num_actors", "item_timeout_s")  # read by the runtime, allowed on any stage


def _clip_size(ctx: StageContext) -> tuple[int, int]:
    w, h = ctx.clip["size"]
    return int(w), int(h)


def _clip_len_bounds(ctx: StageContext) -> tuple[float, float | None]:
    """(shortest, longest) clip length in seconds that the clip spec accepts."""
    fps = float(ctx.clip["fps"])
    if ctx.clip.get("frames"):
        n = int(ctx.clip["frames"]) / fps
        return n, None
    return float(ctx.clip.get("min_seconds") or 0.0), ctx.clip.get("max_seconds")


@register_stage("shot_detect")
class ShotDetect(Stage):
    """Decode once: PySceneDetect cuts (+ forced cuts in long shots), embedding frames, proxy clip frames."""

    _SCAN_KEYS = ("detector", "threshold", "adaptive_threshold", "min_content_val", "window_width",
                  "min_scene_len_s", "luma_only", "detect_width", "frame_skip", "embed_fps", "embed_size",
                  "proxy_max_mb", "transitions", "transition_window_s", "transition_min_change",
                  "transition_max_residual", "transition_min_s", "transition_pad_s", "max_video_seconds",
                  "max_gap_s")

    class Params(StageParams):
        # scan settings (None: ScanConfig's default; the long_video recipe states each one)
        detector: Literal["content", "adaptive"] | None = None
        threshold: float | None = Field(None, gt=0)
        adaptive_threshold: float | None = Field(None, gt=0)
        min_content_val: float | None = Field(None, ge=0)
        window_width: int | None = Field(None, ge=1)
        min_scene_len_s: float | None = Field(None, ge=0)
        luma_only: bool | None = None
        detect_width: int | None = Field(None, ge=16)
        frame_skip: int | None = Field(None, ge=0)
        embed_fps: float | None = Field(None, gt=0)
        embed_size: int | None = Field(None, ge=16)
        proxy_max_mb: float | None = Field(None, ge=0)
        # gradual transitions (dissolves, fades): vidrd_data.media.shots
        transitions: bool | None = None
        transition_window_s: float | None = Field(None, gt=0)
        transition_min_change: float | None = Field(None, ge=0)
        transition_max_residual: float | None = Field(None, gt=0)
        transition_min_s: float | None = Field(None, gt=0)
        transition_pad_s: float | None = Field(None, ge=0)
        max_side: int = Field(4096, ge=1)  # larger pictures: filtered too_large (decoding memory per worker)
        max_pixels: int = Field(4096 * 2304, ge=1)
        min_side: int = Field(16, ge=1)  # smaller: filtered too_small
        max_shot_s: float = Field(20.0, gt=0)  # longer shots get evenly spaced forced cuts
        edge_margin_s: float = Field(0.3, ge=0)
        frames_per_shot: int = Field(2, ge=2)  # one near the start, one near the end (at least)
        # caps per video (docs/security.md; None: ScanConfig's default)
        max_video_seconds: float | None = Field(None, gt=0)  # longer: filtered too_long
        max_gap_s: float | None = Field(None, gt=0)  # a larger jump between frame timestamps: failed (corrupt)
        max_shots: int = Field(5000, ge=1)  # more shots: filtered too_many_shots
        max_frame_buffer_mb: float = Field(1024.0, gt=0)  # shot frames held for embedding: over it, too_large
        max_file_bytes: int = Field(DEFAULT_MAX_VIDEO_FILE_BYTES, ge=1)  # larger files: filtered, never opened
        item_timeout_s: float | None = Field(7200.0, gt=0)  # one pass over up to max_video_seconds of video

    requires = ("path",)
    provides = ("shots", "shot_frames", "shot_frame_times")

    def __init__(self, params: dict[str, Any], ctx: StageContext):
        super().__init__(params, ctx)
        self.check(params, ctx)
        scan = {k: params[k] for k in self._SCAN_KEYS if k in params}
        self.cfg = ScanConfig(**scan, clip_fps=float(ctx.clip["fps"]), clip_size=_clip_size(ctx))
        self.max_shot_s = float(params.get("max_shot_s", 20.0))
        self.edge_margin_s = float(params.get("edge_margin_s", 0.3))
        self.frames_per_shot = int(params.get("frames_per_shot", 2))

    def _sample_times(self, shot: Shot) -> list[float]:
        """Embedding times inside the shot's body (its transitions are no part of what it shows)."""
        m = min(self.edge_margin_s, 0.25 * (shot.body_end - shot.body_start))
        return list(np.linspace(shot.body_start + m, shot.body_end - m, self.frames_per_shot))

    def process(self, item: Item) -> list[Item]:
        from vidrd_data.media.probe import probe
        from vidrd_data.stages.common import picture_size_rule

        info = probe(item.data["path"], scan=False)  # header only: the size limits apply before decoding
        ruled = picture_size_rule(info.width, info.height, self.params, item.input_id)
        if ruled:
            return [item.filter(self.name, ruled)]
        res = scan_video(item.data["path"], self.cfg)
        fps = float(self.ctx.clip["fps"])
        shortest = _clip_len_bounds(self.ctx)[0]
        if grid_frames(0.0, res.duration, fps) < math.ceil(shortest * fps - _EPS):
            return [item.filter(self.name, f"too_short: video is {res.duration:.2f} s, shorter than one "
                                           f"{shortest:.2f} s clip")]
        shots = shots_from_cuts(res.duration, res.cuts, self.max_shot_s, res.transitions)
        if len(shots) > self.params["max_shots"]:
            return [item.filter(self.name, f"too_many_shots: {len(shots)} shots > max_shots {self.params['max_shots']}")]
        n_emb = len(res.embed_jpegs)
        picks = []
        for shot in shots:
            for t in self._sample_times(shot):
                lo = math.ceil(shot.body_start * res.embed_fps - _EPS)  # grid samples inside the body
                hi = max(lo, math.ceil(shot.body_end * res.embed_fps - _EPS) - 1)
                picks.append(min(max(int(round(t * res.embed_fps)), lo), hi, n_emb - 1))
        check_frame_buffer(len(picks), (self.cfg.embed_size, self.cfg.embed_size, 3),
                           self.params["max_frame_buffer_mb"], "shot frames")
        cache = {i: decode_jpeg(res.embed_jpegs[i]) for i in set(picks)}
        frames = np.stack([cache[i] for i in picks]).reshape(len(shots), self.frames_per_shot,
                                                             *cache[picks[0]].shape)
        item.data["shots"] = [vars(s) for s in shots]
        item.data["shot_frames"] = frames
        item.data["shot_frame_times"] = [round(p / res.embed_fps, 3) for p in picks]
        if res.proxy is not None:
            item.data["proxy"] = {"frames": res.proxy, "fps": self.cfg.clip_fps, "offset": 0}
        item.meta.setdefault("source", {})["duration"] = round(res.duration, 3)
        rotation = int(res.info.get("rotation") or 0)
        w, h = (info.height, info.width) if rotation in (90, 270) else (info.width, info.height)  # as displayed
        # the source's picture as the short-video json gives it (displayed size, frame rate, codec, ...)
        item.meta["probe"] = info.as_meta() | {"width": w, "height": h, "rotation": rotation,
                                               "usable_duration": round(res.duration, 6)}
        item.meta["segmentation"] = {
            "detector": {k: getattr(self.cfg, k) for k in self._SCAN_KEYS if hasattr(self.cfg, k)}
            | {"max_shot_s": self.max_shot_s, "edge_margin_s": self.edge_margin_s},
            "video": {"duration": round(res.duration, 3), "decoded_frames": res.decoded_frames,
                      "header_frames": res.header_frames,
                      "header_duration": None if res.header_duration is None else round(res.header_duration, 3),
                      "cuts": [round(c, 3) for c in res.cuts], "shots": len(shots),
                      "transitions": [[round(a, 3), round(b, 3)] for a, b in res.transitions],
                      "decoded_once": res.proxy is not None},
        }
        return [item]


@register_stage("embed_shots")
class EmbedShots(Stage):
    """Embeds each shot's start/end frames; open_clip (models.clip) or the model-free colour histogram."""

    uses_model = True
    batch_size = 8

    class Params(ModelStageParams):
        model: Literal["clip", "color_histogram"] = "clip"  # color_histogram: no model, no weights
        model_key: str = "clip"  # the manifest's models.<model_key> block (open_clip name + checkpoint)
        bins: int = Field(4, ge=2, le=64)  # color_histogram: bins per channel

    requires = ("shot_frames",)
    provides = ("shot_emb",)

    @classmethod
    def _spec(cls, params, ctx) -> dict[str, Any]:
        from vidrd_data.models.clip_embedder import resolve_clip_spec
        from vidrd_data.models.service import model_settings

        return resolve_clip_spec(model_settings(ctx.models, params.get("model_key", "clip"), params), ctx.base_dir)

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        from vidrd_data.models.clip_embedder import check_clip_spec

        if params.get("model", "clip") == "clip":
            check_clip_spec(cls._spec(params, ctx))

    @classmethod
    def resources(cls, params: dict[str, Any], ctx: StageContext) -> Resources:
        from vidrd_data.models.service import actor_resources

        clip = params.get("model", "clip") == "clip"
        return actor_resources(cls._spec(params, ctx).get("device") if clip else "cpu")

    def setup(self) -> None:
        from vidrd_data.models.clip_embedder import load_embedder

        spec = self._spec(self.params, self.ctx)
        self.embedder = load_embedder(self.params.get("model", "clip"), spec, device=spec.get("device", "auto"),
                                      bins=int(self.params.get("bins", 4)))

    def process_batch(self, items: list[Item]) -> list[Item]:
        live = [it for it in items if it.alive]
        if live:
            stacks = [it.data.pop("shot_frames") for it in live]
            flat = np.concatenate([s.reshape(-1, *s.shape[2:]) for s in stacks])
            emb = self.embedder.embed(flat)  # one batched call for every shot of every video
            off = 0
            for it, s in zip(live, stacks):
                n = s.shape[0] * s.shape[1]
                it.data["shot_emb"] = emb[off:off + n].reshape(s.shape[0], s.shape[1], -1)
                it.meta["segmentation"]["embedder"] = self.embedder.describe()
                off += n
        return items

    def process(self, item: Item) -> list[Item]:
        return self.process_batch([item])


@register_stage("segment_shots")
class SegmentShots(Stage):
    """Rules of vidrd_data.segmentation; fans a video out into one item per candidate segment."""

    class Params(StageParams):
        # None: SegmentRules' default (the long_video recipe states each one); a similarity threshold above 1
        # turns its rule off (no cosine reaches it)
        internal_min_sim: float | None = Field(None, ge=-1)
        merge_min_sim: float | None = Field(None, ge=-1)
        min_segment_s: float | None = Field(None, ge=0)
        static_min_sim: float | None = Field(None, ge=-1)
        redundant_min_sim: float | None = Field(None, ge=-1)
        max_segment_s: float | None = Field(None, ge=0)
        trim_s: float | None = Field(None, ge=0)

    requires = ("shots", "shot_emb")
    provides = ("segment",)

    @staticmethod
    def _rules(params: dict[str, Any]) -> SegmentRules:
        try:
            return SegmentRules(**{k: v for k, v in params.items() if k not in _RUNTIME_KEYS})
        except TypeError as exc:  # an unknown name
            raise ValueError(f"segment_shots: {exc}; allowed: {sorted(SegmentRules().as_dict())}") from None

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        cls._rules(params)  # unknown names / bad values fail here, before any work

    def __init__(self, params: dict[str, Any], ctx: StageContext):
        super().__init__(params, ctx)
        shortest, longest = _clip_len_bounds(ctx)
        rules = self._rules(params)
        # the clip spec bounds the segment length too: a segment must hold a whole clip
        self.rules = SegmentRules(**(rules.as_dict() | {
            "min_segment_s": max(rules.min_segment_s, shortest),
            "max_segment_s": min(rules.max_segment_s or math.inf, longest or math.inf)}))

    def process(self, item: Item) -> list[Item]:
        shots = [Shot(**s) for s in item.data.pop("shots")]
        emb = item.data.pop("shot_emb")
        proxy = item.data.pop("proxy", None)
        times = item.data.pop("shot_frame_times", None)
        segments = segment_shots(shots, emb, self.rules, fps=float(self.ctx.clip["fps"]))
        seg_meta = item.meta.get("segmentation", {})
        seg_meta["rules"] = self.rules.as_dict()
        if times is not None:
            seg_meta["embed_frame_times"] = times
        children = item.fan_out(len(segments))
        out = []
        for i, (child, seg) in enumerate(zip(children, segments)):
            span = (seg.clip_start, seg.clip_end) if seg.kept else (seg.start, seg.end)
            child.key = make_key(item.source, item.input_id, span)
            child.meta["source"] = dict(child.meta.get("source", {}), span=[round(span[0], 3), round(span[1], 3)],
                                        shot_ids=seg.shot_ids)
            child.meta["segmentation"] = dict(seg_meta, segment=seg.as_dict() | {"index": i})
            child.meta.setdefault("scores", {}).update({
                "clip_start_end_sim": seg.sims.get("start_end"),
                "clip_boundary_before_sim": seg.sims.get("boundary_before"),
                "clip_boundary_after_sim": seg.sims.get("boundary_after")})
            if not seg.kept:
                out.append(child.filter(self.name, f"{seg.status}: {seg.reason}"))
                continue
            child.data["segment"] = [seg.clip_start, seg.clip_end]
            if proxy is not None:  # hand on only this segment's frames
                fps = proxy["fps"]
                lo, hi = grid_span(seg.clip_start, seg.clip_end, fps)
                lo, hi = max(0, lo), min(len(proxy["frames"]), hi)
                child.data["proxy"] = {"frames": proxy["frames"][lo:hi].copy(), "fps": fps, "offset": lo}
            out.append(child)
        return out


@register_stage("cut_segments")
class CutSegments(Stage):
    """A kept segment -> data["frames"] per the clip spec, data["keyframes"], meta.source.span (true seconds).

    Frames sit on the grid k / fps of the video's own timeline (from its first frame); a clip of N frames
    starting at k0 covers [k0/fps, (k0+N)/fps). The segment's clip window lies inside one shot's body
    (segment_shots chose it and checked, in frames, that it holds a clip). With `frames: N` the clip is
    centred in the window; with min/max_seconds the whole window (capped) is taken.
    """

    class Params(StageParams):
        keyframes: int = Field(1, ge=1)  # frames handed to the captioner (1: the middle one; n: spread)

    requires = ("segment", "path")
    provides = ("frames", "keyframes")

    def process(self, item: Item) -> list[Item]:
        fps = float(self.ctx.clip["fps"])
        s, e = item.data.pop("segment")
        kmin, kmax = grid_span(s, e, fps)  # grid frames inside [s, e]
        want = self.ctx.clip.get("frames")
        if want:
            n = int(want)
            k0 = kmin + max(0, (kmax - kmin - n) // 2)
        else:
            longest = self.ctx.clip.get("max_seconds")
            n = kmax - kmin if not longest else min(kmax - kmin, int(math.floor(longest * fps + _EPS)))
            k0 = kmin
        if n <= 0 or k0 + n > kmax:
            return [item.filter(self.name, f"too_short: segment {s:.2f}-{e:.2f} s holds {kmax - kmin} frames "
                                           f"at {fps:g} fps, the clip needs {n}")]
        proxy = item.data.pop("proxy", None)
        if proxy is not None and abs(proxy["fps"] - fps) < _EPS:
            frames = proxy["frames"][k0 - proxy["offset"]:k0 - proxy["offset"] + n]
        else:  # over the proxy budget: decode just this span
            from vidrd_data.media.decode import decode_span

            frames = decode_span(item.data["path"], k0 / fps, (k0 + n) / fps, fps, _clip_size(self.ctx),
                                 frames=n).frames
        if len(frames) < n:  # the file ended before its header said (or the proxy did)
            return [item.filter(self.name, f"too_short: only {len(frames)} of {n} frames decodable from "
                                           f"{k0 / fps:.2f} s (the file ends early)")]
        min_s = self.ctx.clip.get("min_seconds")
        if not want and min_s and n / fps < float(min_s) - _EPS:
            return [item.filter(self.name, f"too_short: {n / fps:.2f} s < clip min_seconds {min_s}")]
        item.data["frames"] = np.ascontiguousarray(frames)
        nk = int(self.params.get("keyframes", 1))
        idx = [n // 2] if nk == 1 else np.linspace(0, n - 1, nk).round().astype(int).tolist()
        item.data["keyframes"] = item.data["frames"][idx]
        item.meta["source"]["span"] = [round(k0 / fps, 6), round((k0 + n) / fps, 6)]
        item.meta["source"]["clip_fps"] = fps
        return [item]
