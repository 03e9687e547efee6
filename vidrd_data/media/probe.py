"""ffprobe a media file (through ffmpeg-python): what a clip planner needs to know before decoding anything.

`probe(path)` returns a `VideoInfo` or raises `ProbeError` (unreadable, empty, corrupt) / `NoVideoStream`
(audio-only, cover-art-only, data-only) with a message that names the file and the cause.

Rotation is reported the way the display matrix stores it: degrees counter-clockwise that a player turns
the coded picture to show it (90 for a phone held upright). `width`/`height` are the *displayed* size.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg


class ProbeError(Exception):
    """The file cannot be read as media at all."""


class NoVideoStream(ProbeError):
    """The file is media but has no decodable picture stream (audio-only, cover art only)."""


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

    @property
    def coded_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)

    def as_meta(self) -> dict:
        d = asdict(self)
        d.pop("path")
        return d


def _rate(text: str | None) -> float:
    try:
        r = Fraction(text or "0/1")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(r) if r > 0 else 0.0


def _float(value, default: float = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if v == v and v >= 0 else default  # NaN / negative -> default


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    tag = (stream.get("tags") or {}).get("rotate")  # old-style tag: clockwise degrees
    return (-int(round(float(tag)))) % 360 if tag else 0


def _ffprobe_message(err: ffmpeg.Error) -> str:
    text = (err.stderr or b"").decode("utf-8", "replace").strip().splitlines()
    return text[-1] if text else "ffprobe failed"


def probe(path: str | os.PathLike) -> VideoInfo:
    p = Path(path)
    if not p.exists():
        raise ProbeError(f"no such file: {p}")
    if p.stat().st_size == 0:
        raise ProbeError(f"{p} is empty (0 bytes)")
    try:
        info = ffmpeg.probe(str(p))
    except ffmpeg.Error as err:
        raise ProbeError(f"ffprobe cannot read {p.name}: {_ffprobe_message(err)}") from None
    streams = info.get("streams") or []
    fmt = info.get("format") or {}
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    videos = [s for s in streams if s.get("codec_type") == "video"
              and not (s.get("disposition") or {}).get("attached_pic")]
    if not videos:
        what = "audio only" if has_audio else "no audio or video streams"
        raise NoVideoStream(f"no video stream in {p.name} ({what})")
    v = videos[0]
    codec = v.get("codec_name") or "unknown"
    width, height = int(v.get("width") or 0), int(v.get("height") or 0)
    if width <= 0 or height <= 0:
        raise ProbeError(f"{p.name}: video stream has no picture size (codec {codec}, tag "
                         f"{v.get('codec_tag_string', '?')}); the file is corrupt or the codec unknown")
    avg, base = _rate(v.get("avg_frame_rate")), _rate(v.get("r_frame_rate"))
    fps = avg or base
    duration = _float(v.get("duration")) or _float(fmt.get("duration"))
    frames = int(v.get("nb_frames") or 0) or int(round(duration * fps))
    rotation = _rotation(v)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(
        path=str(p), duration=duration, fps=fps, frames=frames, width=width, height=height, codec=codec,
        rotation=rotation, has_video=True, has_audio=has_audio,
        vfr=bool(avg and base and abs(avg - base) / base > 0.01),
        start_time=_float(v.get("start_time")), pix_fmt=v.get("pix_fmt"),
        bit_rate=int(v["bit_rate"]) if str(v.get("bit_rate", "")).isdigit() else None,
    )
