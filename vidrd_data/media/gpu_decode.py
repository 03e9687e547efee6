"""Clip frames decoded on the GPU: torchcodec's CUDA decoder (NVDEC), scaled and cropped on the same device.

The cut stages (`cut`, `cut_segments`) take their frames from here when the task holds a GPU, else from the
PyAV reader (`media.decode`), which stays the reference. Both follow one contract: target time t takes the
frame on screen at t (the last frame whose timestamp is <= t; the first frame stands in before it; the last
stays on screen for half a frame step past its end), times are seconds from the video stream's header
start_time, frames come out uint8 (N, h, w, 3) RGB scaled to cover `size` and center-cropped. Where the
torchcodec path cannot honour that contract (rotation metadata, non-square pixels, a decoder that will not
open or damaged data), the call goes to PyAV instead: the sample is cut the reference way, never lost.

Which decoder a task uses (`decoder` parameter of the cut stages):
- `auto` (default): the GPU Ray assigned to this task (`ray.get_gpu_ids()`), else PyAV. A build
  asks Ray for a GPU share only where the cluster has GPUs its model pools leave free (`decode_gpu_share`), so a
  CPU-only machine runs exactly as before, without importing torch for it.
- `cpu`: always PyAV.
- `cuda`: the GPU (the build refuses up front when the cluster has none free).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from vidrd_data.item_guard import check_input_file
from vidrd_data.media.decode import (_EPS, SKIP_UNSHOWN_FORMATS, DecodedSpan, DecodeError, check_frame_buffer,
                                     cover_crop_size, decode_spans, span_times)

log = logging.getLogger(__name__)

DECODERS = ("auto", "cpu", "cuda")
TIMED_FORMATS = SKIP_UNSHOWN_FORMATS  # containers whose packets carry presentation times
_BATCH = 32  # frames converted at a time: bounds device memory to one batch at full picture size
_warned: set[str] = set()


class Unsupported(Exception):
    """The torchcodec path cannot give this file's frames under the decoding contract (PyAV does)."""


def task_decode_device(setting: str | None) -> str | None:
    """The torch device this task decodes on ("cuda"), or None for PyAV. `auto`, without importing torch: in a
    Ray task, the GPUs Ray assigned to it (none unless the plan gave its step a share); outside Ray, a GPU
    named in CUDA_VISIBLE_DEVICES."""
    setting = setting or "auto"
    if setting not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {setting!r}")
    if setting == "cpu":
        return None
    if setting == "cuda":
        return "cuda"
    import ray

    if ray.is_initialized():
        return "cuda" if ray.get_gpu_ids() else None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return "cuda" if visible and visible not in ("-1", "NoDevFiles") else None


def decode_gpu_share(cluster_gpus: float, cluster_cpus: float, model_gpus: float) -> float:
    """The GPU share one decoding task asks Ray for: the GPUs the model pools leave free, spread over every CPU
    slot, so that GPU decoding never lowers how many chunk tasks run at once. 0: no whole GPU is free (decode
    on CPU; a fractional leftover next to a model is not worth its memory risk)."""
    free = cluster_gpus - model_gpus
    if free < 1 or cluster_cpus <= 0:
        return 0.0
    return max(1e-4, float(np.floor(free / cluster_cpus * 1e4) / 1e4))  # Ray resolves shares to 1e-4


def cut_spans(path, spans: Sequence[tuple[float, float]], fps: float, size: Sequence[int] | None,
              frames: int | None = None, threads: int = 1, keyframes: Sequence[float] | None = None,
              max_buffer_mb: float | None = None, device: str | None = None) -> list[DecodedSpan | DecodeError]:
    """`decode_spans`' result, decoded on `device` through torchcodec where it can be, else by PyAV."""
    if device is not None:
        try:
            return decode_spans_torchcodec(path, spans, fps, size, frames, device, max_buffer_mb)
        except Unsupported as why:
            warn_once(str(why), f"{path}: {why}; decoding it with PyAV")
    return decode_spans(path, spans, fps, size, frames=frames, threads=threads, keyframes=keyframes,
                        max_buffer_mb=max_buffer_mb)


def warn_once(key: str, message: str) -> None:
    # one line per cause and process: a corpus of rotated phone videos must not flood the log
    cause = key.split(":")[0]
    if cause not in _warned:
        _warned.add(cause)
        log.warning(message)


def _container_formats(path) -> set[str]:
    import av

    try:
        with av.open(str(path)) as c:
            return set(c.format.name.split(","))
    except (av.FFmpegError, OSError):
        return set()


def open_decoder(path, device: str):
    """torchcodec's VideoDecoder on `device` (exact seek mode: frame times from a scan of the packets, as PyAV
    reads them); Unsupported where it cannot open, fell back to CPU on a GPU device, or the geometry needs
    what only the PyAV path applies."""
    if not TIMED_FORMATS & _container_formats(path):
        # AVI, MPEG-PS/TS, FLV: frame times are the demuxer's guesses (AVI's B-frames come out shuffled); the
        # PyAV reader has the repairs for them
        raise Unsupported("container: frame times not stored in the file")
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as err:  # noqa: BLE001 - a missing or broken install (its FFmpeg libraries)
        raise Unsupported(f"torchcodec unavailable: {err}") from None
    try:
        dec = VideoDecoder(str(path), device=device, seek_mode="exact", num_ffmpeg_threads=1)
    except Exception as err:  # noqa: BLE001 - no CUDA build / no NVDEC / a file its demuxer refuses
        raise Unsupported(f"torchcodec cannot open on {device}: {str(err).splitlines()[0][:200]}") from None
    md = dec.metadata
    if md.rotation not in (None, 0, 0.0):
        raise Unsupported(f"rotation: stream rotated {md.rotation:g} degrees")
    par = md.pixel_aspect_ratio
    if par and float(par) > 0 and abs(float(par) - 1.0) > 1e-3:  # 0 or None: unspecified, square
        raise Unsupported(f"non-square pixels: pixel aspect {float(par):.3f}")
    if md.begin_stream_seconds is None or md.end_stream_seconds is None:
        raise Unsupported("no frame index: the stream's frame times could not be scanned")
    return dec


def resize(batch, width: int, height: int):
    """uint8 (N, 3, H, W) -> uint8 (N, 3, height, width) on the same device: antialiased bilinear when shrinking
    (close to an area filter), bilinear when growing."""
    import torch.nn.functional as F

    h, w = batch.shape[-2:]
    if (width, height) == (w, h):
        return batch
    x = F.interpolate(batch.float(), size=(height, width), mode="bilinear", antialias=width < w or height < h,
                      align_corners=False)
    return x.round_().clamp_(0, 255).byte()


def resize_cover(batch, size: Sequence[int] | None):
    """uint8 (N, 3, H, W) on any device -> uint8 (N, h, w, 3) numpy: scaled to cover `size` = [w, h] (`resize`),
    center-cropped."""
    if size is None:
        return batch.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    tw, th = int(size[0]), int(size[1])
    rw, rh = cover_crop_size(batch.shape[-1], batch.shape[-2], tw, th)
    x = resize(batch, rw, rh)
    y0, x0 = (rh - th) // 2, (rw - tw) // 2
    return x[:, :, y0:y0 + th, x0:x0 + tw].permute(0, 2, 3, 1).contiguous().cpu().numpy()


def decode_spans_torchcodec(path, spans: Sequence[tuple[float, float]], fps: float, size: Sequence[int] | None,
                            frames: int | None = None, device: str = "cuda", max_buffer_mb: float | None = None
                            ) -> list[DecodedSpan | DecodeError]:
    """`decode_spans` through torchcodec on `device`: the same frames by time, the same errors for spans past the
    data (a DecodeError in the span's place). Raises Unsupported for anything the PyAV path should do instead."""
    check_input_file(path)
    targets = sorted((t, k, j) for k, (s, e) in enumerate(spans) for j, t in enumerate(span_times(s, e, fps, frames)))
    need = [0] * len(spans)
    for _, k, _ in targets:
        need[k] += 1
    dec = open_decoder(path, device)
    md = dec.metadata
    t0 = float(md.begin_stream_seconds_from_header or 0.0)  # the PyAV clock: seconds from the header's start_time
    first, end = float(md.begin_stream_seconds), float(md.end_stream_seconds)
    step = 1.0 / float(md.average_fps) if md.average_fps else 1 / 25
    tw_th = None if size is None else (int(size[1]), int(size[0]))
    out_shape = (*(tw_th or (md.height, md.width)), 3)
    for k, n in enumerate(need):
        check_frame_buffer(n, out_shape, max_buffer_mb, f"span {k}")
    errors: dict[int, DecodeError] = {}
    query: list[tuple[float, int, int]] = []  # (absolute seconds, span, frame)
    for t, k, j in targets:
        a = t0 + t + _EPS * 0.999  # PyAV's pick: the last frame at or before t + _EPS
        if a >= end:
            if a > end + 0.5 * step:
                errors.setdefault(k, DecodeError(f"{os.path.basename(path)}: video data ends at {end - t0:.2f} s, "
                                                 f"before the frame at {t:.2f} s (file truncated or span past the end)"))
                continue
            a = end - 1e-6
        query.append((max(a, first), k, j))
    arrays = {k: np.empty((n, *out_shape), np.uint8) for k, n in enumerate(need) if k not in errors}
    src = {k: [0.0] * n for k, n in enumerate(need)}
    live = [q for q in query if q[1] not in errors]
    try:
        for b in range(0, len(live), _BATCH):
            chunk = live[b:b + _BATCH]
            got = dec.get_frames_played_at(seconds=[a for a, _, _ in chunk])
            rgb = resize_cover(got.data, size)
            pts = got.pts_seconds.tolist()
            for (_, k, j), img, p in zip(chunk, rgb, pts):
                arrays[k][j], src[k][j] = img, p - t0
    except Exception as err:  # noqa: BLE001 - damaged data: PyAV's reader conceals a few damaged packets
        raise Unsupported(f"decode error: {str(err).splitlines()[0][:200]}") from None
    if device.startswith("cuda") and bool(getattr(dec, "cpu_fallback", False)):
        warn_once("cpu_fallback", f"torchcodec decoded {path} on the CPU: {dec.cpu_fallback}")
    return [errors[k] if k in errors else DecodedSpan(arrays[k], src[k]) for k in range(len(spans))]
