"""Short-video stages: `probe` (can this file give clips?), `plan_clips` (which spans), `cut` (decode them).

probe      ffprobe + one cheap demux pass: duration, fps, size, codec, rotation; fails files that cannot
           be clips (unreadable, no video stream, no decoder, too large) and notices truncated data.
plan_clips one video -> n clip items (fan-out), each with its span [start, end) in source seconds.
cut        decodes the span to exactly the clip spec's frames/fps/size (PyAV, in-process) + keyframes.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from vidrd_data.items import Item, make_key
from vidrd_data.media.decode import DecodeError, decode_spans
from vidrd_data.media.probe import probe
from vidrd_data.stages.base import Stage, StageParams, register_stage

_EPS = 1e-6


# ------------------------------------------------------------------------------------------------------ probe

@register_stage("probe")
class Probe(Stage):
    """Probe the file (media.probe: header + packet scan + first frame), fail what cannot give clips."""

    class Params(StageParams):
        backend: Literal["pyav", "ffprobe"] = "pyav"
        max_side: int = Field(4096, ge=1)  # larger pictures fail (memory per worker)
        max_pixels: int = Field(4096 * 2304, ge=1)
        min_side: int = Field(16, ge=1)
        scan_packets: bool = True  # demux once to find where the data really ends (truncated files)

    requires = ("path",)
    provides = ("meta.probe",)

    def process(self, item: Item) -> list[Item]:
        info = probe(item.data["path"], backend=self.params.get("backend", "pyav"),
                     scan=bool(self.params.get("scan_packets", True)))
        name = item.input_id
        max_side, max_pixels = int(self.params.get("max_side", 4096)), int(self.params.get("max_pixels", 4096 * 2304))
        min_side = int(self.params.get("min_side", 16))
        w, h = info.width, info.height
        if max(w, h) > max_side or w * h > max_pixels:
            raise ValueError(f"resolution {w}x{h} of {name} is over the limit (probe.max_side {max_side}, "
                             f"max_pixels {max_pixels}): decoding it would cost too much memory per worker")
        if min(w, h) < min_side:
            raise ValueError(f"resolution {w}x{h} of {name} is under probe.min_side {min_side}")
        item.meta["probe"] = info.as_meta() | {"usable_duration": round(info.usable_duration, 6)}
        if info.keyframes is not None:
            item.data["keyframe_times"] = list(info.keyframes)  # lets cut seek only where it saves decoding
        return [item]


# ------------------------------------------------------------------------------------------------- plan_clips

POLICIES = ("center", "multi")


@register_stage("plan_clips")
class PlanClips(Stage):
    """Spans for the clips of one video, by policy, within the annotated segment (if any) and the data.

    center  one clip centred in the usable window.
    multi   up to `max_clips` non-overlapping clips spread evenly (equal gaps, at least `min_gap_seconds`).
    Clip length: the clip spec's frames / fps; with min/max_seconds instead, `max_seconds` (or the whole
    window when shorter, down to `min_seconds`). A video too short for one clip fails with its length.
    """

    class Params(StageParams):
        policy: Literal["center", "multi"] = "center"  # POLICIES
        max_clips: int = Field(1, ge=1)  # multi: at most this many clips per video
        min_gap_seconds: float = Field(0.0, ge=0)
        margin_seconds: float = Field(0.0, ge=0)

    requires = ("meta.probe",)
    provides = ("span",)

    def spans(self, start: float, end: float) -> list[tuple[float, float]]:
        clip, fps = self.ctx.clip, float(self.ctx.clip["fps"])
        policy = self.params.get("policy", "center")
        k = int(self.params.get("max_clips", 1)) if policy == "multi" else 1
        gap = float(self.params.get("min_gap_seconds", 0.0))
        window = end - start
        if clip.get("frames"):
            length = int(clip["frames"]) / fps
            need = length
        else:
            longest = float(clip.get("max_seconds") or window)
            need = float(clip.get("min_seconds") or 1 / fps)
            length = math.floor(min(longest, window) * fps + _EPS) / fps  # whole frames
        if window + _EPS < need or length <= 0:
            raise ValueError(f"video is {window:.2f} s, shorter than one {need:.2f} s clip")
        n = max(1, min(k, int(math.floor((window + gap + _EPS) / (length + gap)))))
        pad = (window - n * length - (n - 1) * gap) / (n + 1)
        out = []
        for i in range(n):
            s = start + pad + i * (length + gap + pad)
            s = max(start, math.floor(s * 1000 + _EPS) / 1000)  # ms grid: keys carry the span in ms
            out.append((round(s, 6), round(s + length, 6)))
        return out

    def process(self, item: Item) -> list[Item]:
        probe_meta = item.meta.get("probe")
        if probe_meta is None:
            raise ValueError("plan_clips needs the probe stage before it")
        lo, hi = 0.0, float(probe_meta["usable_duration"])  # capped where a truncated file's data ends
        margin = float(self.params.get("margin_seconds", 0.0))
        seg = item.data.get("segment")
        if seg is not None:
            if seg[0] >= hi:
                raise ValueError(f"annotated segment {seg[0]:g}-{seg[1]:g} s starts after the video ends ({hi:.2f} s)")
            lo, hi = max(lo, float(seg[0])), min(hi, float(seg[1]))
        if hi - lo > 2 * margin:
            lo, hi = lo + margin, hi - margin
        spans = self.spans(lo, hi)
        item.data.pop("segment", None)
        children = item.fan_out(len(spans))
        for child, span in zip(children, spans):
            child.key = make_key(item.source, item.input_id, span)
            child.data["span"] = list(span)
            child.meta["source"]["span"] = list(span)
        return children


# -------------------------------------------------------------------------------------------------------- cut

@register_stage("cut")
class Cut(Stage):
    """Decode the span to exactly the clip spec: frames at fps, scaled to cover `size` and center-cropped."""

    class Params(StageParams):
        keyframes: list[Annotated[float, Field(ge=0, le=1)]] = Field([0.5], min_length=1)  # in the clip: 0 first, 1 last
        threads: int = Field(1, ge=1)  # decoder threads per worker

    requires = ("path", "span")
    provides = ("frames", "keyframes")

    def process_batch(self, items: list[Item]) -> list[Item]:
        """The clips of one video (plan_clips' fan-out arrives together) are cut in one decoding pass."""
        groups: dict[str, list[Item]] = {}
        for it in items:
            groups.setdefault(it.data["path"], []).append(it)
        fps = float(self.ctx.clip["fps"])
        want = self.ctx.clip.get("frames")
        positions = self.params.get("keyframes", [0.5])
        for path, group in groups.items():
            spans = [tuple(it.data["span"]) for it in group]  # popped only once cut: a retry sees them
            lengths = {int(want) if want else int(math.floor((e - s) * fps + _EPS)) for s, e in spans}
            if len(lengths) == 1:
                results = decode_spans(path, spans, fps, tuple(self.ctx.clip["size"]), frames=lengths.pop(),
                                       threads=int(self.params.get("threads", 1)),
                                       keyframes=group[0].data.get("keyframe_times"))
            else:  # min/max-seconds clips of different lengths: one pass each
                results = [decode_spans(path, [sp], fps, tuple(self.ctx.clip["size"]),
                                        threads=int(self.params.get("threads", 1)),
                                        keyframes=it.data.get("keyframe_times"))[0] for sp, it in zip(spans, group)]
            for it, res in zip(group, results):
                it.data.pop("span")
                it.data.pop("keyframe_times", None)
                if isinstance(res, DecodeError):
                    it.fail(self.name, f"DecodeError: {res}")
                    continue
                n = len(res.frames)
                idx = sorted({int(round(p * (n - 1))) for p in positions})
                it.data["frames"] = res.frames
                it.data["keyframes"] = res.frames[idx]
                it.meta["keyframes"] = {"index": idx, "source_times": [round(res.source_times[i], 4) for i in idx]}
        return items

    def process(self, item: Item) -> list[Item]:
        return self.process_batch([item])
