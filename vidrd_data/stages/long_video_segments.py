"""Long-video stages, second half: segment_shots -> cut_segments (after shot_detect -> embed_shots in
long_video.py).

segment_shots applies the rules of `vidrd_data.segmentation` and fans the video out into one item per
candidate segment (dropped ones are filtered with their rule, so each gets a status row). cut_segments
turns a kept segment into exactly the clip spec's frames, recording the true span of the content.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vidrd_data.items import Item, make_key
from vidrd_data.segmentation import SegmentRules, Shot, grid_span, segment_shots
from vidrd_data.stages.base import Stage, StageContext, StageParams, register_stage

_EPS = 1e-6


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
            return SegmentRules(**{k: v for k, v in params.items() if k not in StageParams.model_fields})
        except TypeError as exc:  # an unknown name
            raise ValueError(f"segment_shots: {exc}; allowed: {sorted(SegmentRules().as_dict())}") from None

    @classmethod
    def check(cls, params: dict[str, Any], ctx: StageContext) -> None:
        cls._rules(params)  # unknown names / bad values fail here, before any work

    def __init__(self, params: dict[str, Any], ctx: StageContext):
        super().__init__(params, ctx)
        shortest, longest = ctx.clip_length_bounds()
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
        keyframe_times = item.data.pop("keyframe_times", None)
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
            if proxy is not None and "frames" in proxy:  # hand on only this segment's frames
                fps = proxy["fps"]
                lo, hi = grid_span(seg.clip_start, seg.clip_end, fps)
                lo, hi = max(0, lo), min(len(proxy["frames"]), hi)
                child.data["proxy"] = {"frames": proxy["frames"][lo:hi].copy(), "fps": fps, "offset": lo}
            else:
                if proxy is not None:  # the proxy's file: a handle (read where the clip is cut, if it can be)
                    child.data["proxy"] = proxy
                if keyframe_times is not None:
                    child.data["keyframe_times"] = keyframe_times  # one list shared by the children (a pickle memo)
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
        decoder: Literal["auto", "cpu", "cuda"] = "auto"  # media.gpu_decode: auto = the task's GPU if it has one

    requires = ("segment", "path")
    provides = ("frames", "keyframes")
    decodes_video = True  # the runtime gives its task a GPU share where one is free (runtime.place_gpu_decoding)

    def _window(self, item: Item) -> tuple[int, int] | str:
        """(first grid frame k0, frame count n) of the clip in the item's segment, or why there is none."""
        fps = float(self.ctx.clip["fps"])
        s, e = item.data["segment"]
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
            return (f"too_short: segment {s:.2f}-{e:.2f} s holds {kmax - kmin} frames at {fps:g} fps, the clip "
                    f"needs {n}")
        return k0, n

    def process_batch(self, items: list[Item]) -> list[Item]:
        """Clips from the proxy where it holds them; else the clips of one video in one decoding pass, seeking
        only where a keyframe lets it skip decoding (a seek per clip decodes from the keyframe before each)."""
        fps = float(self.ctx.clip["fps"])
        out: list[Item] = []
        pending: dict[str, list[tuple[int, Item, int, int]]] = {}
        for item in items:
            window = self._window(item)
            if isinstance(window, str):
                item.data.pop("segment")
                out.append(item.filter(self.name, window))
                continue
            k0, n = window
            proxy = item.data.get("proxy")
            out.append(item)
            held = None
            if proxy is not None and abs(proxy["fps"] - fps) < _EPS:
                if "frames" in proxy:
                    held = proxy["frames"][k0 - proxy["offset"]:k0 - proxy["offset"] + n]
                else:  # None on another node or once the file is gone (a retry): decoded below
                    held = proxy["file"].read(k0 - proxy["offset"], min(k0 - proxy["offset"] + n, len(proxy["file"])))
            if held is not None:
                out[-1] = self._finish(item, held, k0, n)
            else:  # over the proxy budget: decode this span again
                pending.setdefault(item.data["path"], []).append((len(out) - 1, item, k0, n))
        from vidrd_data.media.decode import DecodeError
        from vidrd_data.media.gpu_decode import cut_spans, task_decode_device

        device = task_decode_device(self.params.get("decoder")) if pending else None
        for path, group in pending.items():
            spans = [(k0 / fps, (k0 + n) / fps) for _, _, k0, n in group]
            lengths = {n for _, _, _, n in group}
            keyframes = group[0][1].data.get("keyframe_times")
            if len(lengths) == 1:
                results = cut_spans(path, spans, fps, self.ctx.clip_size(), frames=lengths.pop(), keyframes=keyframes,
                                    device=device)
            else:  # clips of different lengths (min/max_seconds): one pass each
                results = [cut_spans(path, [sp], fps, self.ctx.clip_size(), frames=n, keyframes=keyframes,
                                     device=device)[0] for sp, (_, _, _, n) in zip(spans, group)]
            for (pos, item, k0, n), res in zip(group, results):
                if isinstance(res, DecodeError):
                    out[pos] = item.fail(self.name, f"DecodeError: {res}")
                else:
                    out[pos] = self._finish(item, res.frames, k0, n)
        return out

    def _finish(self, item: Item, frames: np.ndarray, k0: int, n: int) -> Item:
        """The item with its clip frames, keyframes and true span (or filtered too_short)."""
        fps = float(self.ctx.clip["fps"])
        item.data.pop("segment")
        item.data.pop("proxy", None)
        item.data.pop("keyframe_times", None)
        if len(frames) < n:  # the file ended before its header said (or the proxy did)
            return item.filter(self.name, f"too_short: only {len(frames)} of {n} frames decodable from "
                                          f"{k0 / fps:.2f} s (the file ends early)")
        min_s = self.ctx.clip.get("min_seconds")
        if not self.ctx.clip.get("frames") and min_s and n / fps < float(min_s) - _EPS:
            return item.filter(self.name, f"too_short: {n / fps:.2f} s < clip min_seconds {min_s}")
        item.data["frames"] = np.ascontiguousarray(frames)
        nk = int(self.params.get("keyframes", 1))
        idx = [n // 2] if nk == 1 else np.linspace(0, n - 1, nk).round().astype(int).tolist()
        item.data["keyframes"] = item.data["frames"][idx]
        item.meta["source"]["span"] = [round(k0 / fps, 6), round((k0 + n) / fps, 6)]
        item.meta["source"]["clip_fps"] = fps
        return item

    def process(self, item: Item) -> list[Item]:
        return self.process_batch([item])
