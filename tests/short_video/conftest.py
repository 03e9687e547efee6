"""Short-video fixtures: the synthetic media (see sv_helpers) including one bad input of each kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.short_video.sv_helpers import cfr_times, ffmpeg, vfr_times, write_coded, write_video


@pytest.fixture(scope="session")
def sv_media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sv_media")
    m = {
        "cfr": write_video(d / "cfr.mp4", cfr_times(4.0)),
        "vfr": write_video(d / "vfr.mp4", vfr_times()),
        "rotated": write_video(d / "rotated.mp4", cfr_times(2.0), rotation=90),
        "odd": write_video(d / "odd.mp4", cfr_times(2.0), size=(175, 143), pix_fmt="yuv444p"),
    }
    # Bad inputs, one of each kind.
    m["short"] = write_video(d / "short.mp4", cfr_times(0.8))
    (d / "empty.mp4").write_bytes(b"")
    m["empty"] = d / "empty.mp4"
    m["corrupt"] = d / "corrupt.mp4"
    m["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    full = write_video(d / "moov_at_end.mp4", cfr_times(4.0), faststart=False)  # moov last: cut it off
    data = full.read_bytes()
    m["truncated"] = d / "truncated.mp4"
    m["truncated"].write_bytes(data[: len(data) // 2])
    full.unlink()
    m["audio_only"] = d / "audio_only.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac", str(m["audio_only"]))
    avi = d / "mpeg4.avi"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "3", "-c:v", "mpeg4", str(avi))
    raw = avi.read_bytes().replace(b"FMP4", b"ZQX9")  # a fourcc no decoder knows
    m["unsupported"] = d / "unsupported.avi"
    m["unsupported"].write_bytes(raw)
    avi.unlink()
    m["huge"] = d / "huge.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=4352x96:rate=25", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast",
           str(m["huge"]))
    return m


@pytest.fixture(scope="session")
def sv_ctx():
    from vidrd_data.stages.base import StageContext

    return StageContext(clip={"fps": 8.0, "size": [64, 64], "frames": 8})


@pytest.fixture(scope="session")
def tiny_blip2(tmp_path_factory) -> Path:
    """A tiny random BLIP-2 saved to disk: loaded by the same code as a real checkpoint."""
    from vidrd_testing.tiny_models import save_tiny_blip2

    return save_tiny_blip2(tmp_path_factory.mktemp("models") / "tiny-blip2")


def write_bframes(path: Path, codec: str, times_ms: list[int], options: dict[str, str]) -> Path:
    """A video with B-frames whose frame k shows k (sv_helpers.gray), at the given times (ms)."""
    return write_coded(path, codec, times_ms, options, per_frame=path.suffix == ".avi" or codec == "mpeg2video")


@pytest.fixture(scope="session")
def bframe_media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("skip_unshown")
    x264 = {"preset": "ultrafast", "qp": "10", "bf": "3", "b_strategy": "0", "g": "50"}
    return {
        "h264_b": write_bframes(d / "b.mp4", "libx264", cfr_times(6.0), {**x264, "x264-params": "b-pyramid=none"}),
        "h264_pyramid": write_bframes(d / "pyr.mp4", "libx264", cfr_times(6.0),
                                      {**x264, "x264-params": "b-pyramid=normal"}),
        "h264_vfr": write_bframes(d / "vfr.mkv", "libx264", vfr_times(), {**x264, "x264-params": "b-pyramid=normal"}),
        "hevc": write_bframes(d / "hevc.mp4", "libx265", cfr_times(4.0),
                              {"preset": "ultrafast", "x265-params": "bframes=3:log-level=none"}),
        "mpeg4_mp4": write_bframes(d / "m4.mp4", "mpeg4", cfr_times(5.0), {"bf": "2", "g": "40", "qscale": "2"}),
        "mpeg4_avi": write_bframes(d / "m4.avi", "mpeg4", cfr_times(5.0), {"bf": "2", "g": "40", "qscale": "2"}),
        "mpeg2_mkv": write_bframes(d / "m2.mkv", "mpeg2video", cfr_times(5.0), {"bf": "2", "g": "30", "qscale": "2"}),
        "mpeg2_ts": write_bframes(d / "m2.ts", "mpeg2video", cfr_times(5.0), {"bf": "2", "g": "30", "qscale": "2"}),
    }
