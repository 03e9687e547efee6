"""Long-video stages, first half: shot_detect -> embed_shots (then segment_shots -> cut_segments in
long_video_segments.py).

shot_detect decodes each video once (media.scan) and hands on the shots, a few frames per shot for
embedding and, within budget, the clip frames ("proxy"). embed_shots runs an image embedder (open_clip on a
Ray actor pool, GPU when the cluster has one).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vidrd_data.item_guard import DEFAULT_MAX_VIDEO_FILE_BYTES
from vidrd_data.items import Item
from vidrd_data.media.decode import check_frame_buffer
from vidrd_data.media.scan import (WHOLE_SHOT_PROXY_FILE_MIN_PIXEL_RATIO, ScanConfig, ScanHeader, ScanPart, ScanRange,
                                   decode_jpeg, plan_ranges, scan_part, scan_video)
from vidrd_data.segmentation import Shot, grid_frames, shots_from_cuts
from vidrd_data.stages.base import ModelStageParams, Resources, Stage, StageContext, StageParams, register_stage

_EPS = 1e-6


@register_stage("shot_detect")
class ShotDetect(Stage):
    """Decode once: PySceneDetect cuts (+ forced cuts in long shots), embedding frames, proxy clip frames."""

    _SCAN_KEYS = ("detector", "threshold", "adaptive_threshold", "min_content_val", "window_width",
                  "min_scene_len_s", "luma_only", "detect_width", "frame_skip", "embed_fps", "embed_size",
                  "proxy_max_mb", "proxy_file_max_mb", "proxy_file_min_pixel_ratio", "transitions",
                  "transition_window_s", "transition_min_change", "transition_max_residual", "transition_min_s",
                  "transition_pad_s", "max_video_seconds", "max_gap_s")

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
        proxy_file_max_mb: float | None = Field(None, ge=0)  # over proxy_max_mb: clip frames in a local file (0: off)
        proxy_file_min_pixel_ratio: float | None = Field(None, ge=0)  # ... for sources of N x the clip's pixels
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
        # intra-video parallelism: a video at least twice this long is scanned in keyframe-aligned time ranges
        # of at least this length, one task each (0: always one pass); how many: scan_parts, default the
        # cluster's CPUs under Ray (1 in a plain process)
        scan_range_s: float = Field(30.0, ge=0)
        scan_parts: int | None = Field(None, ge=1)
        decoder: Literal["auto", "cpu", "cuda"] = "auto"  # media.gpu_decode: auto = the task's GPU if it has one

    requires = ("path",)
    provides = ("shots", "shot_frames", "shot_frame_times")  # + proxy or keyframe_times
    decodes_video = True  # the runtime gives its task a GPU share where one is free (runtime.place_gpu_decoding)
    waits_on_tasks = True  # a long video's other time ranges scan as tasks of their own

    def __init__(self, params: dict[str, Any], ctx: StageContext):
        super().__init__(params, ctx)
        self.check(params, ctx)
        scan = {k: params[k] for k in self._SCAN_KEYS if k in params}
        self.cfg = ScanConfig(**scan, clip_fps=float(ctx.clip["fps"]), clip_size=ctx.clip_size())
        self.max_shot_s = float(params.get("max_shot_s", 20.0))
        self.edge_margin_s = float(params.get("edge_margin_s", 0.3))
        self.frames_per_shot = int(params.get("frames_per_shot", 2))

    @classmethod
    def derived_params(cls, params, recipe, clip) -> dict[str, Any]:
        """Whole-shot output (segment_shots keeps every shot, the clip spec takes a whole shot): clips cover about
        the whole video, so the decode-once file pays from smaller sources (media.scan's measured ratios)."""
        if "segment_shots" not in recipe or clip.get("frames"):
            return {}
        from vidrd_data.stages.long_video_segments import SegmentShots

        try:  # the rules as segment_shots applies them (the clip spec's bounds merged in)
            rules = SegmentShots(recipe["segment_shots"] or {}, StageContext(clip=clip)).rules
        except (TypeError, ValueError):  # segment_shots' own check reports it
            return {}
        longest_shot = float(params.get("max_shot_s") or cls.Params.model_fields["max_shot_s"].default)
        if rules.keeps_every_shot(longest_shot):
            return {"proxy_file_min_pixel_ratio": WHOLE_SHOT_PROXY_FILE_MIN_PIXEL_RATIO}
        return {}

    def _sample_times(self, shot: Shot) -> list[float]:
        """Embedding times inside the shot's body (its transitions are no part of what it shows)."""
        m = min(self.edge_margin_s, 0.25 * (shot.body_end - shot.body_start))
        return list(np.linspace(shot.body_start + m, shot.body_end - m, self.frames_per_shot))

    def _ranges(self, path: str, duration: float) -> list[ScanRange] | None:
        """Time ranges to scan apart, or None (one pass): only for videos of at least two ranges, never with
        frame_skip (its every-n-th frame would restart counting in each range)."""
        from vidrd_data.media.probe import probe

        min_s = float(self.params.get("scan_range_s", 30.0))
        if not min_s or duration < 2 * min_s or self.cfg.frame_skip:
            return None
        parts = self.params.get("scan_parts") or _cluster_parts()
        if parts < 2:
            return None
        keyframes = probe(path, scan=True).keyframes or ()  # demuxes the packets, decodes nothing
        ranges = plan_ranges(self.cfg, duration, keyframes, int(parts), min_s)
        return ranges if len(ranges) > 1 else None

    def _remote_parts(self, path: str):
        """Under Ray: the ranges after the first as tasks of their own, the first here."""
        import ray

        if not ray.is_initialized():
            return None

        def run(ranges: list[ScanRange], head: ScanHeader) -> list[ScanPart]:
            from ray.exceptions import RayTaskError

            from vidrd_data.runtime import TASK_RETRIES

            task = _remote_scan().options(num_cpus=1, max_retries=TASK_RETRIES)
            refs = [task.remote(path, self.cfg, head, r) for r in ranges[1:]]
            try:
                return [scan_part(path, self.cfg, head, ranges[0])] + ray.get(refs)
            except RayTaskError as err:  # the range's own error (DecodeError, too_long, ...), not Ray's wrapper
                raise (err.cause if isinstance(err.cause, Exception) else err) from None
            except BaseException:
                for ref in refs:  # this range failed: the others' work is moot
                    ray.cancel(ref)
                raise

        return run

    def _scan(self, path: str, duration: float):
        """On the task's GPU in one pass where it has one and the file allows (media.gpu_scan), else PyAV."""
        from vidrd_data.media.gpu_decode import Unsupported, task_decode_device, warn_once

        device = task_decode_device(self.params.get("decoder"))
        if device is not None:
            from vidrd_data.media.gpu_scan import scan_on_device

            try:
                return scan_on_device(path, self.cfg, device)
            except Unsupported as why:
                warn_once(str(why), f"{path}: {why}; scanning it with PyAV")
        return scan_video(path, self.cfg, self._ranges(path, duration), self._remote_parts(path), self._scratch())

    def _scratch(self):
        """A private folder for this video's proxy file, in a build's Ray task only: the chunk task that made it
        removes it when its clips are cut and the driver removes the run's folder (vidrd_data.scratch). Elsewhere
        (a plain process, or stages called under Ray outside a build: no run id, nobody would remove the file)
        the frames stay in memory or the clips decode again."""
        import ray

        if not ray.is_initialized() or not self.cfg.proxy_file_max_mb or not self.ctx.run_id:
            return None
        from vidrd_data.scratch import new_dir

        return new_dir(self.ctx.run_id)

    def process(self, item: Item) -> list[Item]:
        from vidrd_data.media.probe import probe
        from vidrd_data.stages.common import picture_size_rule

        info = probe(item.data["path"], scan=False)  # header only: the size limits apply before decoding
        ruled = picture_size_rule(info.width, info.height, self.params, item.input_id)
        if ruled:
            return [item.filter(self.name, ruled)]
        res = self._scan(item.data["path"], info.duration)
        fps = float(self.ctx.clip["fps"])
        shortest = self.ctx.clip_length_bounds()[0]
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
        else:  # its clips are decoded again: where the decoder may seek (continuing is cheaper across no keyframe)
            item.data["keyframe_times"] = res.keyframes
            if res.proxy_file is not None:  # ... unless the task that cuts them can read the proxy's file
                item.data["proxy"] = {"file": res.proxy_file, "fps": self.cfg.clip_fps, "offset": 0}
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
                      "decoded_once": res.proxy is not None or res.proxy_file is not None,
                      "scan_ranges": res.info.get("ranges", 1)},
        }
        return [item]


_REMOTE_SCAN: list = []  # per worker process: scan_part as a Ray task


def _remote_scan():
    import ray

    if not _REMOTE_SCAN:
        _REMOTE_SCAN.append(ray.remote(scan_part))
    return _REMOTE_SCAN[0]


def _cluster_parts() -> int:
    """How many ranges to scan a long video in: the cluster's CPUs under Ray, else 1."""
    import ray

    if not ray.is_initialized():
        return 1
    from vidrd_data.runtime import _split_setup

    return int(_split_setup()["parts"])


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
