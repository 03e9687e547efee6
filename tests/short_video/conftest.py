"""Short-video fixtures: the synthetic media (see sv_helpers) including one bad input of each kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.short_video.sv_helpers import cfr_times, ffmpeg, vfr_times, write_video


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
