"""The frame on screen, container by container: late seeks backed off from, AVI's shuffled times re-ordered.

Each file is generated at 25 fps with B-frames where the codec has them; frame k shows k (sv_helpers.gray), so
what `decode_spans` / `sample_frames_at` return is checked against the index a player would show. MPEG-TS seeks
can land a keyframe late (measured: a frame 28 frames late stood in for a target): the decoder seeks further
back. After MPEG-PS and FLV seeks frames came 1-2 frames off: those are read straight through. AVI stores no
presentation times: with B-frames the decoder's frames come out carrying each other's times; they are put
back in order, so clips step evenly.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from tests.short_video.sv_helpers import frame_index, write_coded
from vidrd_data.media.decode import VideoReader, decode_spans, sample_frames_at
from vidrd_data.media.probe import probe
from vidrd_data.media.scan import ScanConfig, plan_ranges, scan_video

FPS = 25
X264 = {"bf": "3", "g": "30", "qp": "5"}
CASES = {  # name: (file, codec, muxer, options); per-frame ticks where the muxer is CFR-only
    "mkv": ("a.mkv", "libx264", None, X264),
    "mov": ("a.mov", "libx264", None, X264),
    "3gp": ("a.3gp", "libx264", None, X264),
    "webm_vp9": ("a.webm", "libvpx-vp9", None, {"g": "30", "crf": "10", "b": "0", "lag-in-frames": "16"}),
    "ts": ("a.ts", "libx264", None, X264),
    "flv": ("a.flv", "libx264", None, X264),
    "vob_mpeg2": ("a.vob", "mpeg2video", "vob", {"bf": "2", "g": "30", "qscale": "2"}),
    "mpg_mpeg1": ("a.mpg", "mpeg1video", "mpeg", {"bf": "2", "g": "30", "qscale": "2"}),
    "avi_h264": ("a.avi", "libx264", None, X264),
    "avi_mjpeg": ("m.avi", "mjpeg", None, {}),
}
PER_FRAME = {"ts", "vob_mpeg2", "mpg_mpeg1", "avi_h264", "avi_mjpeg"}


def write(path: Path, codec: str, muxer: str | None, options: dict, per_frame: bool, n: int = 150) -> Path:
    return write_coded(path, codec, [k * 1000 // FPS for k in range(n)], options, muxer, per_frame,
                       pix_fmt="yuvj420p" if codec == "mjpeg" else "yuv420p")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("containers")
    return {name: write(d / f, codec, mux, opts, name in PER_FRAME) for name, (f, codec, mux, opts) in CASES.items()}


def shown(t: float) -> int:
    """The frame a player shows at t. Targets land off frame boundaries below (timestamps are rounded to
    the container's time base, e.g. 1 ms in FLV: a target within that of a boundary could go either way)."""
    return int(math.floor(t * FPS))


def off_boundary(rng: random.Random, lo: float, hi: float) -> float:
    t = rng.uniform(lo, hi)
    return (math.floor(t * FPS) + rng.uniform(0.2, 0.8)) / FPS


@pytest.mark.parametrize("name", sorted(CASES))
def test_spans_and_samples_get_the_frame_on_screen(media, name):
    path = media[name]
    info = probe(path)
    reader = VideoReader(path)
    try:
        assert reader.seeks == (name not in ("flv", "vob_mpeg2", "mpg_mpeg1")), name
        offset = 1 if name == "avi_h264" else 0  # AVI's clock: frame 0 is stamped one B-frame delay late, as in ffmpeg
    finally:
        reader.close()
    rng = random.Random(5)
    for fps in (2.0, 8.0, 12.5):
        starts = sorted(off_boundary(rng, 0.2, info.duration - 1.3) for _ in range(3))
        spans = [(s, s + 1.0) for s in starts]
        outs = decode_spans(path, spans, fps, None, keyframes=info.keyframes)
        for (s, _), out in zip(spans, outs):
            got = [frame_index(f) for f in out.frames]
            # targets s + j/fps all sit 0.2-0.8 of a frame past a boundary: exact arithmetic, no rounding ties
            want = [shown(s + j / fps) - offset for j in range(len(got))]
            assert got == want, (name, fps, round(s, 3))
    times = [off_boundary(rng, 0.2, info.duration - 0.2) for _ in range(10)]
    got = [frame_index(f) for f in sample_frames_at(path, times).frames]
    assert got == [shown(t) - offset for t in times], name


def test_avi_b_frame_times_are_put_back_in_display_order(media):
    """Without re-ordering, this AVI's frames 3, 7, 11, ... came out stamped two frames early and 1, 2, 4, 5,
    ... one frame late: a clip cut from it stepped unevenly."""
    reader = VideoReader(media["avi_h264"])
    try:
        assert reader.retimes
        pairs = [(frame_index(f.to_ndarray(format="rgb24")), t) for t, f in reader.frames()]
    finally:
        reader.close()
    assert [k for k, _ in pairs] == list(range(150))
    assert np.allclose([t for _, t in pairs], [(k + 1) / FPS for k in range(150)])
    plain = VideoReader(media["avi_mjpeg"])  # no B-frames: nothing to reorder, no frames held back
    try:
        assert not plain.retimes
    finally:
        plain.close()


def test_long_video_scan_does_not_split_a_container_that_cannot_seek(tmp_path):
    cfg = ScanConfig(min_scene_len_s=0.2, transition_window_s=0.2)
    path = write(tmp_path / "long.vob", "mpeg2video", "vob", CASES["vob_mpeg2"][3], per_frame=True, n=FPS * 20)
    info = probe(path, scan=True)
    ranges = plan_ranges(cfg, info.duration, info.keyframes, 3, 1.0)
    assert len(ranges) > 1  # the planner would split it...
    res = scan_video(str(path), cfg, ranges)
    assert res.info.get("ranges", 1) == 1  # ...the scan reads it in one pass
    assert res.cuts == scan_video(str(path), cfg).cuts


def _late_seeks(monkeypatch, first_n: int | None = None) -> tuple[list[float], list[int]]:
    """Make the first `first_n` seeks (None: all) land at the video's last keyframe; record seeks and rewinds."""
    seek, rewind = VideoReader.seek, VideoReader.rewind
    seeks: list[float] = []
    rewinds: list[int] = []

    def late(self, t):
        seeks.append(t)
        if t <= self.frame_step or (first_n is not None and len(seeks) > first_n):
            return seek(self, t)
        return seek(self, 100.0)

    monkeypatch.setattr(VideoReader, "seek", late)
    monkeypatch.setattr(VideoReader, "rewind", lambda self: rewinds.append(1) or rewind(self))
    return seeks, rewinds


def test_a_seek_that_lands_late_is_retried_further_back(media, monkeypatch):
    path = media["mkv"]  # 6 s, keyframes every 1.2 s
    seeks, rewinds = _late_seeks(monkeypatch, first_n=1)
    [out] = decode_spans(path, [(3.01, 4.01)], 8.0, None)
    assert [frame_index(f) for f in out.frames] == [shown(3.01 + j / 8) for j in range(8)]
    assert seeks == [3.01, pytest.approx(3.01 - 2.0)] and not rewinds  # backed off once, not from the start


def test_seeks_that_always_land_late_end_in_one_pass_from_the_start(media, monkeypatch):
    path = media["mkv"]
    seeks, rewinds = _late_seeks(monkeypatch)
    [out] = decode_spans(path, [(3.01, 4.01)], 8.0, None)
    assert [frame_index(f) for f in out.frames] == [shown(3.01 + j / 8) for j in range(8)]
    assert rewinds == [1] and len(seeks) == 3  # 3.01, 1.01 late again, -4.99 is the start: read from there


def test_a_seek_that_finds_no_frame_at_all_is_retried_too(media, monkeypatch):
    """A seek past the data (a TS search off the end) yields nothing: backed off like a late landing."""
    seek, frames = VideoReader.seek, VideoReader.frames
    seeks: list[float] = []

    def first_seek_finds_nothing(self, t):
        seeks.append(t)
        self._nothing = len(seeks) == 1
        return seek(self, t)

    def maybe_nothing(self, *a, **kw):
        if getattr(self, "_nothing", False):
            self._nothing = False
            return iter(())
        return frames(self, *a, **kw)

    monkeypatch.setattr(VideoReader, "seek", first_seek_finds_nothing)
    monkeypatch.setattr(VideoReader, "frames", maybe_nothing)
    [out] = decode_spans(media["mkv"], [(3.01, 4.01)], 8.0, None)
    assert [frame_index(f) for f in out.frames] == [shown(3.01 + j / 8) for j in range(8)]
    assert seeks == [3.01, pytest.approx(1.01)]
