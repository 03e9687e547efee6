"""Shot detection and the long-video scan fed by the GPU path (media.gpu_scan), run here on torchcodec's CPU device.

The decoder and the shrinking to detection size change (torchcodec on the device, antialiased bilinear in RGB
instead of swscale's area filter in YUV); everything decided from them must not: the same cuts, transitions,
duration, frame count, keyframes, grid samples as the PyAV pass, on videos whose truth is known.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.scene_videos import write_scene_video
from vidrd_data.media.gpu_decode import Unsupported
from vidrd_data.media.gpu_scan import detect_shots_on_device, scan_on_device
from vidrd_data.media.scan import ScanConfig, decode_jpeg, scan_video
from vidrd_data.media.shots import DetectConfig, ShotFinder

PARTS = [("scene", 0, 2.0), ("scene", 1, 1.6), ("dissolve", 1.0), ("scene", 2, 2.0), ("fade", 1.2),
         ("scene", 3, 1.5), ("scene", 4, 2.2)]


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu_scan") / "scenes.mp4"
    return path, write_scene_video(path, PARTS, fps=25, size=(192, 108))


@pytest.mark.parametrize("clip_size", [(64, 64), (96, 48)])
def test_scan_on_device_decides_what_the_pyav_scan_does(scene_video, clip_size):
    path, truth = scene_video
    cfg = ScanConfig(clip_fps=8.0, clip_size=clip_size)
    ref, got = scan_video(str(path), cfg), scan_on_device(str(path), cfg, "cpu")
    assert got.cuts == ref.cuts and got.cuts  # the hard cuts of the timeline, found the same way
    assert all(min(abs(c - t) for t in got.cuts) <= 0.04 for c in truth.cuts)
    assert len(got.transitions) == len(ref.transitions) == len(truth.transitions)
    for (a, b), (c, d) in zip(got.transitions, ref.transitions):
        assert abs(a - c) <= 0.041 and abs(b - d) <= 0.041
    assert (got.duration, got.decoded_frames, got.keyframes) == (ref.duration, ref.decoded_frames, ref.keyframes)
    assert len(got.embed_jpegs) == len(ref.embed_jpegs)
    diffs = [np.abs(decode_jpeg(a).astype(int) - decode_jpeg(b)).mean() for a, b in zip(got.embed_jpegs, ref.embed_jpegs)]
    assert max(diffs) < 4.0
    assert got.proxy.shape == ref.proxy.shape == (len(ref.proxy), clip_size[1], clip_size[0], 3)
    assert np.abs(got.proxy.astype(int) - ref.proxy).mean() < 3.0
    assert got.info["decoded_on"] == "cpu" and not got.info["proxy_over_budget"]


def test_scan_on_device_keeps_the_proxy_budget(scene_video):
    path, _ = scene_video
    cfg = ScanConfig(clip_fps=25.0, clip_size=(192, 108), proxy_max_mb=1.0)  # 10 s of frames need ~15 MB
    got, ref = scan_on_device(str(path), cfg, "cpu"), scan_video(str(path), cfg)
    assert got.proxy is None and ref.proxy is None


def test_detect_shots_on_device_matches_the_pyav_loop(scene_video):
    from vidrd_data.media.decode import VideoReader

    path, _ = scene_video
    cfg = DetectConfig()
    finder, end = detect_shots_on_device(str(path), cfg, "cpu")
    reader = VideoReader(path)
    ref = ShotFinder(cfg, 1.0 / reader.frame_step)
    ref_end = 0.0
    for t, frame in reader.frames():
        ref.push(t, frame)
        ref_end = max(ref_end, t + reader.frame_step)
    reader.close()
    assert end == pytest.approx(ref_end)
    assert finder.finish(end) == ref.finish(ref_end)


def test_what_the_device_path_cannot_do_is_unsupported(tmp_path):
    import torch

    from tests.short_video.sv_helpers import cfr_times, write_video

    rotated = write_video(tmp_path / "r.mp4", cfr_times(2.0), rotation=90)
    with pytest.raises(Unsupported, match="rotation"):
        scan_on_device(str(rotated), ScanConfig(), "cpu")
    if not torch.cuda.is_available():
        plain = write_video(tmp_path / "p.mp4", cfr_times(1.0))
        with pytest.raises(Unsupported, match="cannot open on cuda"):
            scan_on_device(str(plain), ScanConfig(), "cuda")


def test_shot_detect_stage_with_decoder_cuda_falls_back_to_the_same_result(scene_video):
    """decoder: cuda where no CUDA decoder opens (this machine): the stage scans with PyAV, same item."""
    import torch

    from vidrd_data.items import Item
    from vidrd_data.stages.base import StageContext, get_stage

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the stage decodes there")
    path, _ = scene_video
    ctx = StageContext(clip={"fps": 8.0, "size": [64, 64], "frames": 8})
    out = {}
    for decoder in ("cpu", "cuda"):
        item = Item(key="v", source="s", input_id="v", data={"path": str(path)})
        out[decoder] = get_stage("shot_detect")({"decoder": decoder}, ctx).process(item)[0]
    assert out["cpu"].meta["segmentation"] == out["cuda"].meta["segmentation"]
    assert np.array_equal(out["cpu"].data["shot_frames"], out["cuda"].data["shot_frames"])
