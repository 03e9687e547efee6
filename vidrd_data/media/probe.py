"""Probe a media file: what a clip planner needs to know before decoding it.

`probe(path)` returns a `VideoInfo` or raises `ProbeError` (unreadable, empty, corrupt), `NoVideoStream`
(audio-only, cover-art-only) or `UnsupportedCodec`, each with a message naming the file and the cause.

Two backends read the same libavformat headers:
- "pyav" (default): in-process. One open, then one demux pass over the video packets (no decoding: I/O
  speed) that finds where the data really ends (a header may promise more than a truncated file holds) and
  where the keyframes are (the cutter seeks only where that saves decoding), and decodes the first frame
  (proves the codec decodes; its display matrix gives the rotation). No process start: ffprobe costs
  150-300 ms of wall time per file here, as much as cutting and encoding a clip.
- "ffprobe": `ffprobe -show_format -show_streams` through ffmpeg-python (a separate process), for a
  cross-check or where ffprobe's view is wanted; `scan=True` adds the same packet scan.

Rotation is reported the way the display matrix stores it: degrees counter-clockwise that a player turns
the coded picture to show it (90 for a phone held upright). `width`/`height` are the *displayed* size.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av


class ProbeError(Exception):
    """The file cannot be read as media at all."""


class NoVideoStream(ProbeError):
    """The file is media but has no picture stream (audio-only, cover art only)."""


class UnsupportedCodec(ProbeError):
    """The video stream's codec has no decoder in this ffmpeg/PyAV build, or its data does not decode."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    duration: float  # seconds of video (stream duration, else the container's)
    fps: float  # average frame rate
    frames: int  # frame count (from the header where present, else duration x fps)
    width: int  # displayed width (after rotation)
    height: int
    codec: str
    rotation: int  # 0, 90, 180 or 270: counter-clockwise turn applied for display
    has_video: bool
    has_audio: bool
    vfr: bool  # frame rate varies (declared base rate differs from the average)
    start_time: float
    pix_fmt: str | None = None
    bit_rate: int | None = None
    # from the packet scan (None without one)
    data_end: float | None = None  # end of the last video packet: < duration when the file is truncated
    packets: int | None = None
    keyframes: tuple[float, ...] | None = field(default=None, repr=False)  # keyframe times (s)

    @property
    def coded_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)

    @property
    def usable_duration(self) -> float:
        """Seconds that can actually be decoded: the header's duration, capped by where the data ends."""
        if self.data_end is not None and (self.duration <= 0 or self.data_end < self.duration):
            return self.data_end
        return self.duration

    @property
    def truncated(self) -> bool:
        return self.data_end is not None and self.duration > 0 and \
            self.data_end < self.duration - max(0.5, 2 / (self.fps or 25))

    def as_meta(self) -> dict:
        d = asdict(self)
        for k in ("path", "keyframes"):
            d.pop(k)
        if self.truncated:
            d["truncated"] = True
        return d


def _check_file(p: Path) -> None:
    from vidrd_data.item_guard import check_input_file

    if not p.exists():
        raise ProbeError(f"no such file: {p}")
    if check_input_file(p) == 0:  # NotRegularFile for a FIFO / device / directory: never opened
        raise ProbeError(f"{p.name} is empty (0 bytes)")


def _rate(r) -> float:
    try:
        v = float(Fraction(r)) if r is not None else 0.0
    except (ValueError, ZeroDivisionError, TypeError):
        return 0.0
    return v if v > 0 else 0.0


def probe(path: str | os.PathLike, backend: str = "pyav", scan: bool = True) -> VideoInfo:
    p = Path(path)
    _check_file(p)
    if backend == "ffprobe":
        info = _probe_ffprobe(p)
        if scan:
            with _open(p) as container:
                extra = _scan(container, p.name, info.codec)
            info = VideoInfo(**{**asdict(info), **{k: v for k, v in extra.items() if k != "rotation"}})
        return info
    if backend != "pyav":
        raise ValueError(f"unknown probe backend {backend!r}; allowed: pyav, ffprobe")
    return _probe_pyav(p, scan)


# --------------------------------------------------------------------------------------------- in-process

def _open(p: Path):
    try:
        return av.open(str(p))
    except av.FFmpegError as err:
        raise ProbeError(f"cannot read {p.name}: {getattr(err, 'strerror', None) or err}") from None
    except OSError as err:
        raise ProbeError(f"cannot read {p.name}: {err}") from None


def _video_stream(container, name: str):
    videos = [s for s in container.streams.video if av.stream.Disposition.attached_pic not in s.disposition]
    if not videos:
        what = "audio only" if container.streams.audio else "no audio or video streams"
        raise NoVideoStream(f"no video stream in {name} ({what})")
    return videos[0]


def _probe_pyav(p: Path, scan: bool) -> VideoInfo:
    with _open(p) as container:
        s = _video_stream(container, p.name)
        cc = s.codec_context
        if cc is None:
            raise UnsupportedCodec(f"unsupported codec in {p.name}: this ffmpeg/PyAV build has no decoder for "
                                   "its video stream")
        tb = s.time_base
        duration = float(s.duration * tb) if s.duration else (container.duration or 0) / av.time_base
        avg, base = _rate(s.average_rate), _rate(s.base_rate)
        fps = avg or _rate(s.guessed_rate) or base
        width, height = int(cc.width or 0), int(cc.height or 0)
        if width <= 0 or height <= 0:
            raise ProbeError(f"{p.name}: video stream has no picture size (codec {cc.name}): corrupt header")
        extra = _scan(container, p.name, cc.name) if scan else {}
        rotation = extra.pop("rotation", 0)
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=str(p), duration=max(0.0, duration), fps=fps,
            frames=int(s.frames or 0) or int(round(duration * fps)), width=width, height=height, codec=cc.name,
            rotation=rotation, has_video=True, has_audio=bool(container.streams.audio),
            vfr=bool(avg and base and abs(avg - base) / base > 0.01),
            start_time=float(s.start_time * tb) if s.start_time is not None else 0.0,
            pix_fmt=cc.pix_fmt, bit_rate=int(cc.bit_rate or container.bit_rate or 0) or None, **extra)


def _scan(container, name: str, codec: str) -> dict:
    """Demux every video packet (no decoding) and decode just the first frame."""
    s = _video_stream(container, name)
    tb = s.time_base
    t0 = float(s.start_time * tb) if s.start_time is not None else 0.0
    first = None
    data_end, packets, keyframes = 0.0, 0, []
    try:
        for packet in container.demux(s):
            if packet.pts is None or packet.size == 0:
                continue
            packets += 1
            t = float(packet.pts * tb) - t0
            data_end = max(data_end, t + float((packet.duration or 0) * tb))
            if packet.is_keyframe:
                keyframes.append(round(t, 6))
            if first is None:
                try:
                    frames = packet.decode()
                    first = frames[0] if frames else None
                except av.FFmpegError:
                    pass
        if first is None and packets:
            frames = s.codec_context.decode(None)  # flush: decoders with delay
            first = frames[0] if frames else None
    except av.FFmpegError:
        pass  # the data stops here (corrupt tail): data_end says how far it got
    if packets == 0:
        raise ProbeError(f"{name} has a video stream ({codec}) but no video packets")
    if first is None:
        raise UnsupportedCodec(f"cannot decode any frame of {name} (codec {codec}): corrupt or unsupported data")
    return {"data_end": round(data_end, 6), "packets": packets, "keyframes": tuple(sorted(keyframes)),
            "rotation": int(round(getattr(first, "rotation", 0) or 0)) % 360}


# ---------------------------------------------------------------------------------------------- ffprobe

def _ffprobe_rotation(stream: dict) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    tag = (stream.get("tags") or {}).get("rotate")  # old-style tag: clockwise degrees
    return (-int(round(float(tag)))) % 360 if tag else 0


def _float(value, default: float = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if v == v and v >= 0 else default  # NaN / negative -> default


def _probe_ffprobe(p: Path) -> VideoInfo:
    import ffmpeg

    try:
        info = ffmpeg.probe(str(p))
    except ffmpeg.Error as err:
        lines = (err.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        line = lines[-1] if lines else "ffprobe failed"
        line = line[len(str(p)) + 2:] if line.startswith(f"{p}: ") else line  # the name is in our message
        raise ProbeError(f"cannot read {p.name}: {line}") from None
    streams = info.get("streams") or []
    fmt = info.get("format") or {}
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    videos = [s for s in streams if s.get("codec_type") == "video"
              and not (s.get("disposition") or {}).get("attached_pic")]
    if not videos:
        raise NoVideoStream(f"no video stream in {p.name} ({'audio only' if has_audio else 'no audio or video streams'})")
    v = videos[0]
    codec = v.get("codec_name") or "unknown"
    if codec == "unknown":
        raise UnsupportedCodec(f"unsupported codec in {p.name} (fourcc {v.get('codec_tag_string', '?')}): this "
                               "ffmpeg build has no decoder for it")
    width, height = int(v.get("width") or 0), int(v.get("height") or 0)
    if width <= 0 or height <= 0:
        raise ProbeError(f"{p.name}: video stream has no picture size (codec {codec}): corrupt header")
    avg, base = _rate(v.get("avg_frame_rate")), _rate(v.get("r_frame_rate"))
    fps = avg or base
    duration = _float(v.get("duration")) or _float(fmt.get("duration"))
    rotation = _ffprobe_rotation(v)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(
        path=str(p), duration=duration, fps=fps, frames=int(v.get("nb_frames") or 0) or int(round(duration * fps)),
        width=width, height=height, codec=codec, rotation=rotation, has_video=True, has_audio=has_audio,
        vfr=bool(avg and base and abs(avg - base) / base > 0.01), start_time=_float(v.get("start_time")),
        pix_fmt=v.get("pix_fmt"), bit_rate=int(v["bit_rate"]) if str(v.get("bit_rate", "")).isdigit() else None)
