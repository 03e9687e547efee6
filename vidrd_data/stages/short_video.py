"""Short-video stages: `probe` (can this file give clips?), `detect_shots` (where are its cuts and
transitions?), `plan_clips` (which spans), `cut` (decode them).

probe        ffprobe + one cheap demux pass: duration, fps, size, codec, rotation; fails files that cannot
             be clips (unreadable, no video stream, no decoder), filters too large / too small pictures
             (too_large, too_small) and notices truncated data.
detect_shots one decoding pass at detection size: hard cuts and gradual transitions (media.shots) -> the
             shot bodies clips may use; the decoded frames are kept for cut (media.kept_frames, a budget).
plan_clips   one video -> n clip items (fan-out), each with its span [start, end) in source seconds, each
             inside one shot (clip_plan); a video too short for one clip is filtered too_short.
cut          the span at exactly the clip spec's frames/fps/size (detect_shots' kept frames, else decoded: PyAV
             in-process, or the task's GPU: media.gpu_decode) + keyframes.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from vidrd_data.clip_plan import NoRoom, Window, plan_spans
from vidrd_data.item_guard import DEFAULT_MAX_VIDEO_FILE_BYTES
from vidrd_data.items import Item, make_key
from vidrd_data.media import kept_frames
from vidrd_data.media.decode import DecodeError, VideoReader
from vidrd_data.media.gpu_decode import Unsupported, cut_spans, task_decode_device, warn_once
from vidrd_data.media.gpu_scan import detect_shots_on_device
from vidrd_data.media.probe import probe
from vidrd_data.media.shots import DetectConfig, ShotFinder
from vidrd_data.segmentation import shots_from_cuts
from vidrd_data.stages.base import Stage, StageParams, register_stage
from vidrd_data.stages.common import picture_size_rule

_EPS = 1e-6


# ------------------------------------------------------------------------------------------------------ probe

@register_stage("probe")
class Probe(Stage):
    """Probe the file (media.probe: header + packet scan + first frame): fail what cannot give clips, filter
    pictures outside the size limits."""

    class Params(StageParams):
        backend: Literal["pyav", "ffprobe"] = "pyav"
        max_side: int = Field(4096, ge=1)  # larger pictures: filtered too_large (memory per worker)
        max_pixels: int = Field(4096 * 2304, ge=1)
        min_side: int = Field(16, ge=1)  # smaller: filtered too_small
        scan_packets: bool = True  # demux once to find where the data really ends (truncated files)
        max_file_bytes: int = Field(DEFAULT_MAX_VIDEO_FILE_BYTES, ge=1)  # larger files: filtered, never opened
        max_video_seconds: float = Field(4 * 3600.0, gt=0)  # longer videos: filtered too_long (never scanned)

    requires = ("path",)
    provides = ("meta.probe",)

    def process(self, item: Item) -> list[Item]:
        info = probe(item.data["path"], backend=self.params.get("backend", "pyav"),
                     scan=bool(self.params.get("scan_packets", True)))
        ruled = picture_size_rule(info.width, info.height, self.params, item.input_id)
        if ruled:
            return [item.filter(self.name, ruled)]
        if info.usable_duration > self.params["max_video_seconds"]:
            return [item.filter(self.name, f"too_long: video is {info.usable_duration:.0f} s > max_video_seconds "
                                           f"{self.params['max_video_seconds']:g}")]
        item.meta["probe"] = info.as_meta() | {"usable_duration": round(info.usable_duration, 6)}
        if info.keyframes is not None:
            item.data["keyframe_times"] = list(info.keyframes)  # lets cut seek only where it saves decoding
        return [item]


# ------------------------------------------------------------------------------------------------- plan_clips

POLICIES = ("center", "multi")


@register_stage("plan_clips")
class PlanClips(Stage):
    """Spans for the clips of one video, by policy (vidrd_data.clip_plan), inside the shots detect_shots found
    (the whole usable window when the recipe has no detect_shots), within the annotated segment (if any) and
    the data. A video too short for one clip, or whose shots are all shorter than a clip: filtered too_short.
    """

    class Params(StageParams):
        policy: Literal["center", "multi"] = "center"  # POLICIES
        max_clips: int = Field(1, ge=1)  # multi: at most this many clips per video
        min_gap_seconds: float = Field(0.0, ge=0)
        margin_seconds: float = Field(0.0, ge=0)

    requires = ("meta.probe",)
    provides = ("span",)

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
        shots = item.data["shot_spans"] if "shot_spans" in item.data else [[lo, hi, None]]
        windows = [Window(max(lo, a), min(hi, b), k) for a, b, k in shots if min(hi, b) > max(lo, a)]
        if not windows:
            return [item.filter(self.name, f"too_short: no shot footage in {lo:.2f}-{hi:.2f} s (all of it lies in "
                                           "transitions: fades, dissolves)")]
        try:
            spans = plan_spans(windows, self.ctx.clip, self.params.get("policy", "center"),
                               int(self.params.get("max_clips", 1)), float(self.params.get("min_gap_seconds", 0.0)))
        except NoRoom as why:
            return [item.filter(self.name, str(why))]
        item.data.pop("segment", None)
        item.data.pop("shot_spans", None)
        children = item.fan_out(len(spans))
        for child, (s, e, shot) in zip(children, spans):
            child.key = make_key(item.source, item.input_id, (s, e))
            child.data["span"] = [s, e]
            child.meta["source"]["span"] = [s, e]
            if shot is not None:
                child.meta["source"]["shot_ids"] = [shot]
        return children


# ---------------------------------------------------------------------------------------------- detect_shots

@register_stage("detect_shots")
class DetectShots(Stage):
    """One decoding pass at detection size: hard cuts (PySceneDetect) and gradual transitions (media.shots).
    Hands plan_clips the shot bodies (data.shot_spans); records cuts, transitions and shots in json.details."""

    class Params(StageParams):
        detector: Literal["content", "adaptive"] = "content"
        threshold: float = Field(27.0, gt=0)  # content: HSV change that makes a cut
        adaptive_threshold: float = Field(3.0, gt=0)
        min_scene_len_s: float = Field(0.6, gt=0)  # no two cuts closer than this
        detect_width: int = Field(256, ge=16)
        frame_skip: int = Field(0, ge=0)  # detect on every (n+1)-th frame: cut times lose n frames
        transitions: bool = True  # find dissolves and fades (trimmed out of the shots)
        transition_window_s: float = Field(0.5, gt=0)
        transition_min_change: float = Field(12.0, ge=0)
        transition_max_residual: float = Field(0.35, gt=0)
        transition_min_s: float = Field(0.2, gt=0)
        transition_pad_s: float = Field(0.6, ge=0)
        threads: int = Field(1, ge=1)  # decoder threads per worker (PyAV)
        decoder: Literal["auto", "cpu", "cuda"] = "auto"  # media.gpu_decode: auto = the task's GPU if it has one
        # Decoded frames kept for `cut` in the same task (media.kept_frames), per worker: cut then decodes nothing
        # again. A video whose frames do not fit what is left is decoded again by cut. 0: never kept.
        keep_frames_mb: float = Field(256.0, ge=0)

    requires = ("path", "meta.probe")
    provides = ("shot_spans",)
    decodes_video = True  # the runtime gives its task a GPU share where one is free (runtime.place_gpu_decoding)

    def process_batch(self, items: list[Item]) -> list[Item]:
        kept_frames.clear()  # a new chunk: frames no cut took (their video filtered since) are let go
        return super().process_batch(items)

    def process(self, item: Item) -> list[Item]:
        import av

        cfg = DetectConfig(**{k: v for k, v in self.params.items() if k in DetectConfig.__dataclass_fields__})
        stopped, finder = None, None
        device = task_decode_device(self.params.get("decoder"))
        if device is not None:  # the task's GPU (media.gpu_scan); what it cannot decode goes to PyAV below
            try:
                finder, end = detect_shots_on_device(item.data["path"], cfg, device)
            except Unsupported as why:
                warn_once(str(why), f"{item.data['path']}: {why}; detecting shots with PyAV")
        if finder is None:
            reader = VideoReader(item.data["path"], threads=int(self.params.get("threads", 1)))
            finder = ShotFinder(cfg, 1.0 / reader.frame_step)
            kept = kept_frames.start(item.data["path"], reader, float(self.params.get("keep_frames_mb", 256.0)))
            end = 0.0
            try:
                for t, frame in reader.frames():
                    finder.push(t, frame)
                    if kept is not None and not kept.add(t, frame):
                        kept = None  # over the budget: cut decodes this one again
                    end = max(end, t + reader.frame_step)
            except (av.FFmpegError, DecodeError) as err:  # damaged tail: the shots end where decoding did
                stopped = f"decoding stopped at {end:.2f} s: {err}"
            finally:
                reader.close()
            if kept is not None and stopped is None:  # a damaged file is decoded again by cut, as before
                kept_frames.keep(kept)
        usable = float(item.meta["probe"]["usable_duration"])
        duration = min(end, usable) if end > 0 else usable
        cuts, transitions = finder.finish(duration)
        shots = shots_from_cuts(duration, cuts, 0.0, transitions)
        item.data["shot_spans"] = [[s.body_start, s.body_end, s.id] for s in shots if s.body_end > s.body_start]
        item.meta["shots"] = {"cuts": [round(c, 3) for c in cuts],
                              "transitions": [[round(a, 3), round(b, 3)] for a, b in transitions],
                              "spans": [[round(s.body_start, 3), round(s.body_end, 3)] for s in shots],
                              "decoded_until": round(end, 3), "stopped": stopped}
        return [item]


# -------------------------------------------------------------------------------------------------------- cut

@register_stage("cut")
class Cut(Stage):
    """Decode the span to exactly the clip spec: frames at fps, scaled to cover `size` and center-cropped."""

    class Params(StageParams):
        keyframes: list[Annotated[float, Field(ge=0, le=1)]] = Field([0.5], min_length=1)  # in the clip: 0 first, 1 last
        threads: int = Field(1, ge=1)  # decoder threads per worker (PyAV)
        decoder: Literal["auto", "cpu", "cuda"] = "auto"  # media.gpu_decode: auto = the task's GPU if it has one

    requires = ("path", "span")
    provides = ("frames", "keyframes")
    decodes_video = True  # the runtime gives its task a GPU share where one is free (runtime.place_gpu_decoding)

    def process_batch(self, items: list[Item]) -> list[Item]:
        """The clips of one video (plan_clips' fan-out arrives together) are cut in one decoding pass."""
        groups: dict[str, list[Item]] = {}
        for it in items:
            groups.setdefault(it.data["path"], []).append(it)
        fps = float(self.ctx.clip["fps"])
        want = self.ctx.clip.get("frames")
        positions = self.params.get("keyframes", [0.5])
        device = task_decode_device(self.params.get("decoder"))
        threads = int(self.params.get("threads", 1))
        for path, group in groups.items():
            spans = [tuple(it.data["span"]) for it in group]  # popped only once cut: a retry sees them
            kept = kept_frames.take(path) if device is None else None  # detect_shots' frames (this task's)
            if kept is not None:
                results = kept_frames.cut_kept(kept, spans, fps, tuple(self.ctx.clip["size"]),
                                               frames=int(want) if want else None)
            else:
                results = self._decode_spans(path, group, spans, fps, want, threads, device)
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

    def _decode_spans(self, path: str, group: list[Item], spans: list[tuple], fps: float, want, threads: int,
                      device) -> list:
        """Nothing kept for this video: decode its spans from the file, in one pass where they share a length."""
        size = tuple(self.ctx.clip["size"])
        lengths = {int(want) if want else int(math.floor((e - s) * fps + _EPS)) for s, e in spans}
        if len(lengths) == 1:
            return cut_spans(path, spans, fps, size, frames=lengths.pop(), threads=threads,
                             keyframes=group[0].data.get("keyframe_times"), device=device)
        # min/max-seconds clips of different lengths: one pass each
        return [cut_spans(path, [sp], fps, size, threads=threads, keyframes=it.data.get("keyframe_times"),
                          device=device)[0] for sp, it in zip(spans, group)]

    def process(self, item: Item) -> list[Item]:
        return self.process_batch([item])
