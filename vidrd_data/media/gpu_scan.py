"""Shot detection and the long-video scan with frames decoded on the GPU (torchcodec, NVDEC).

The same passes as `media.scan.scan_part` (long videos: cuts, transitions, embedding samples, proxy) and the
short-video `detect_shots` loop, fed by torchcodec instead of PyAV: every frame is decoded and shrunk to the
detection size on the device, only that small picture (and the grid samples) come back to the CPU, where
PySceneDetect's detector and the transition finder run as before. One pass per video: on a GPU the decoder is
not the bottleneck that splitting a video into time ranges works around. Anything the GPU path cannot do
(`gpu_decode.Unsupported`: rotation, non-square pixels, guessed frame times, damaged data, no CUDA decoder)
goes back to the PyAV pass, which stays the reference.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidrd_data.item_guard import LimitExceeded
from vidrd_data.media.decode import DecodeError
from vidrd_data.media.gpu_decode import Unsupported, open_decoder, resize, resize_cover
from vidrd_data.media.shots import DetectConfig, ShotFinder, detect_height

_BATCH = 32  # frames decoded per call: one batch of full-size pictures on the device at a time


def device_frames(dec, detect_width: int) -> Iterator[tuple[float, float | None, object, np.ndarray]]:
    """(time from the header's start_time, frame duration, the frame (3, H, W) on the device, the frame at
    detection size as BGR uint8) for every frame, in display order."""
    md = dec.metadata
    t0 = float(md.begin_stream_seconds_from_header or 0.0)
    n = int(md.num_frames or 0)
    dh = detect_height(md.width, md.height, detect_width)
    for b in range(0, n, _BATCH):
        batch = dec.get_frames_in_range(start=b, stop=min(n, b + _BATCH))
        x = batch.data
        det = resize(x, detect_width, dh).flip(1).permute(0, 2, 3, 1).contiguous().cpu().numpy()  # RGB -> BGR
        for i, (p, d) in enumerate(zip(batch.pts_seconds.tolist(), batch.duration_seconds.tolist())):
            yield p - t0, d, x[i], det[i]


def _checked(path, pairs, cfg):
    """The frames with the scan's caps applied (media.scan.check_frame_time), time kept monotone from 0 as in
    the PyAV pass."""
    from vidrd_data.media.scan import check_frame_time

    last = 0.0
    for t, d, frame, det in pairs:
        check_frame_time(path, t, last, cfg)
        last = max(t, last)
        yield last, d, frame, det


def detect_shots_on_device(path, cfg: DetectConfig, device: str) -> tuple[ShotFinder, float]:
    """The short-video detect_shots pass: (the finder fed every frame, where decoding ended: the last frame's
    time + one frame step); Unsupported -> use PyAV."""
    dec = open_decoder(path, device)
    md = dec.metadata
    step = 1.0 / float(md.average_fps) if md.average_fps else 1 / 25
    finder = ShotFinder(cfg, 1.0 / step)
    end = 0.0
    try:
        for t, _, _, det in device_frames(dec, cfg.detect_width):
            finder.push_bgr(t, det)
            end = max(end, t + step)
    except Exception as err:  # noqa: BLE001 - damaged data: the PyAV pass tolerates a few damaged packets
        raise Unsupported(f"decode error: {str(err).splitlines()[0][:200]}") from None
    return finder, end


def scan_on_device(path: str, cfg, device: str):
    """`media.scan.scan_video` in one pass on `device` -> ScanResult; Unsupported -> use the PyAV scan."""
    from PIL import Image

    from vidrd_data.media.decode import VideoReader
    from vidrd_data.media.probe import probe
    from vidrd_data.media.scan import GridSampler, ScanPart, merge_scan_parts, read_header

    reader = VideoReader(path, threads=1)
    try:
        head = read_header(reader, cfg, path)  # the same caps and proxy budget as the PyAV scan
    finally:
        reader.close()
    dec = open_decoder(path, device)

    def jpeg(frame) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(resize_cover(frame[None], (cfg.embed_size, cfg.embed_size))[0]).save(buf, "JPEG", quality=90)
        return buf.getvalue()

    finder = ShotFinder(cfg, head.rate)
    embed = GridSampler(cfg.embed_fps, jpeg)
    proxy = None
    if head.proxy_limit is not None:
        proxy = GridSampler(cfg.clip_fps, lambda f: resize_cover(f[None], cfg.clip_size)[0], limit=head.proxy_limit)
    n, last_t, last_dur, first_t = 0, 0.0, None, None
    try:
        for t, dur, frame, det in _checked(path, device_frames(dec, cfg.detect_width), cfg):
            first_t = t if first_t is None else first_t
            finder.push_bgr(t, det)
            embed.push(frame, t)
            if proxy is not None:
                proxy.push(frame, t)
            n, last_t, last_dur = n + 1, t, dur
    except (DecodeError, LimitExceeded):
        raise
    except Exception as err:  # noqa: BLE001 - damaged data: the PyAV scan conceals a few damaged packets
        raise Unsupported(f"decode error: {str(err).splitlines()[0][:200]}") from None
    if n == 0:
        raise Unsupported("no frames decoded")
    end_t = last_t + (last_dur if last_dur and last_dur > 0 else 1.0 / (head.avg_fps or 25.0))
    finder.close(end_t)
    for sampler in (embed, proxy):
        if sampler is not None:
            sampler.finish(end_t)
    tf = finder.transitions
    part = ScanPart(cuts=list(finder.cuts),
                    judged=(list(tf.times), list(tf.blend), list(tf.dark)) if tf is not None else ([], [], []),
                    embed=embed.samples, proxy=None if proxy is None else proxy.samples,
                    proxy_overflow=bool(proxy is not None and proxy.overflow),
                    keyframes=list(probe(path, scan=True).keyframes or ()), decoded=n, first_t=first_t or 0.0,
                    last_t=end_t, ended=True, errors=0, rotation=0)
    res = merge_scan_parts([part], cfg, head)
    res.info["decoded_on"] = device
    return res
