"""The GPU decoding path (media.gpu_decode): torchcodec's decoder behind the cut stages, checked here on the CPU.

The torchcodec path is the one a GPU task takes (device="cuda" there; torchcodec's CPU device here, the same
code after the decoder): it must pick the same frames by time as the PyAV reference, hand every file it
cannot honour the contract for to PyAV unchanged, and a build must ask Ray for a GPU share only where the
cluster has a GPU its model pools leave free.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.short_video.sv_helpers import frame_index, real_clip, write_coded, cfr_times
from vidrd_data.item_guard import LimitExceeded
from vidrd_data.media.decode import DecodeError, decode_spans
from vidrd_data.media.gpu_decode import (Unsupported, cut_spans, decode_gpu_share, decode_spans_torchcodec,
                                         task_decode_device)

REPO = Path(__file__).resolve().parents[2]


def _both(path, spans, fps, size, frames=None):
    return (decode_spans(path, spans, fps, size, frames=frames),
            decode_spans_torchcodec(path, spans, fps, size, frames=frames, device="cpu"))


@pytest.mark.parametrize("name", ["cfr", "vfr", "odd"])
@pytest.mark.parametrize("fps", [5.0, 8.0, 25.0, 40.0])
def test_same_frames_by_time_as_pyav(sv_media, name, fps):
    """Frames encode their own index: the torchcodec path shows the same source frame at every target time,
    also on variable frame rate (10 then 30 fps) and above the source rate (repeats)."""
    rng = np.random.default_rng(int(fps) * 7 + len(name))
    starts = sorted(rng.uniform(0.0, 1.0, 3).round(3))
    spans = [(s, s + 0.8) for s in starts]
    ref, got = _both(sv_media[name], spans, fps, (64, 64), frames=int(0.8 * fps))
    for r, g in zip(ref, got):
        assert [frame_index(f) for f in g.frames] == [frame_index(f) for f in r.frames]
        np.testing.assert_allclose(g.source_times, r.source_times, atol=1e-6)


@pytest.mark.parametrize("clip", ["bikes.mp4", "bigbuckbunny.mp4"])
def test_real_clips_close_to_pyav(clip):
    """Real H.264 (B-frames): identical source frames; pixels equal unscaled and within a few levels scaled
    (antialiased bilinear in RGB vs swscale's area filter in YUV)."""
    path = real_clip(clip)
    spans = [(0.1, 1.1), (1.7, 2.7), (3.05, 4.05)]
    ref, got = _both(path, spans, 8.0, None, frames=8)
    for r, g in zip(ref, got):
        assert g.source_times == pytest.approx(r.source_times, abs=1e-6)
        assert np.abs(g.frames.astype(int) - r.frames).mean() < 0.5
    ref, got = _both(path, spans, 8.0, (256, 192), frames=8)
    for r, g in zip(ref, got):
        assert g.frames.shape == r.frames.shape == (8, 192, 256, 3)
        assert np.abs(g.frames.astype(int) - r.frames).mean() < 4.0


def test_span_past_the_end_is_that_spans_error(sv_media):
    ref, got = _both(sv_media["cfr"], [(0.5, 1.5), (3.5, 4.5)], 8.0, (64, 64), frames=8)
    assert not isinstance(got[0], DecodeError) and isinstance(got[1], DecodeError)
    assert isinstance(ref[1], DecodeError) and "ends at 4.00 s" in str(got[1])
    assert [frame_index(f) for f in got[0].frames] == [frame_index(f) for f in ref[0].frames]


def test_frame_buffer_cap_applies_before_decoding(sv_media):
    with pytest.raises(LimitExceeded, match="too_large"):
        decode_spans_torchcodec(sv_media["cfr"], [(0.0, 2.0)], 25.0, (640, 640), frames=50, device="cpu",
                                max_buffer_mb=10)


def test_unsupported_files_go_to_pyav_unchanged(sv_media, tmp_path):
    """Rotation metadata, containers without stored times (AVI) and damaged files: the reference path's result."""
    avi = write_coded(tmp_path / "b.avi", "mpeg4", cfr_times(2.0), {"bf": "2"}, muxer="avi", per_frame=True)
    for path, why in [(sv_media["rotated"], "rotation"), (avi, "container")]:
        with pytest.raises(Unsupported, match=why):
            decode_spans_torchcodec(path, [(0.2, 1.2)], 8.0, (64, 64), frames=8, device="cpu")
        ref = decode_spans(path, [(0.2, 1.2)], 8.0, (64, 64), frames=8)[0]
        got = cut_spans(path, [(0.2, 1.2)], 8.0, (64, 64), frames=8, device="cpu")[0]
        assert np.array_equal(got.frames, ref.frames) and got.source_times == ref.source_times
    with pytest.raises(DecodeError):
        cut_spans(sv_media["corrupt"], [(0.0, 1.0)], 8.0, (64, 64), frames=8, device="cpu")


@pytest.mark.parametrize("name", ["corrupt", "truncated", "unsupported", "empty", "audio_only", "odd", "short"])
def test_every_bad_input_ends_as_the_pyav_path_ends_it(sv_media, name):
    """Damaged, cut-off, undecodable, empty, video-less and odd inputs: the GPU path's entry gives exactly what the
    reference gives (the same frames, the same DecodeError in a span's place, or the same exception type)."""
    def outcome(fn):
        try:
            res = fn(sv_media[name], [(0.1, 0.6), (0.4, 0.9)], 8.0, (64, 64), frames=4)
        except Exception as err:  # noqa: BLE001 - the type is what is compared
            return type(err).__name__
        return [type(r).__name__ if isinstance(r, DecodeError) else (r.frames.tobytes(), r.source_times) for r in res]

    got = outcome(lambda *a, **k: cut_spans(*a, **k, device="cpu"))
    ref = outcome(decode_spans)
    if name in ("odd", "short"):  # decodable: torchcodec's own pixels, the same source frames at the same times
        index = lambda raw: [frame_index(f) for f in np.frombuffer(raw, np.uint8).reshape(-1, 64, 64, 3)]  # noqa: E731
        assert [(index(b), t) for b, t in got] == [(index(b), t) for b, t in ref]
    else:
        assert got == ref


def test_cuda_request_without_a_usable_gpu_decodes_with_pyav(sv_media):
    """decoder: cuda where torchcodec cannot open a CUDA decoder (no GPU, no NVDEC): the PyAV frames, not a crash."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CUDA path itself runs (test_on_a_gpu_the_cuda_decoder_picks_the_same_frames)")
    ref = decode_spans(sv_media["cfr"], [(0.3, 1.3)], 8.0, (64, 64), frames=8)[0]
    got = cut_spans(sv_media["cfr"], [(0.3, 1.3)], 8.0, (64, 64), frames=8, device="cuda")[0]
    assert np.array_equal(got.frames, ref.frames)


def _cuda_decoder_or_skip(path):
    import torch

    from vidrd_data.media.gpu_decode import open_decoder

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the GPU decoder's own check runs where one is lent")
    try:
        open_decoder(path, "cuda")
    except Unsupported as why:
        pytest.skip(f"CUDA present but torchcodec's CUDA decoder is not usable here: {why}")


@pytest.mark.parametrize("name", ["cfr", "vfr"])
def test_on_a_gpu_the_cuda_decoder_picks_the_same_frames(sv_media, name):
    """NVDEC through torchcodec: the same source frames by time as PyAV (frames show their own index)."""
    _cuda_decoder_or_skip(sv_media[name])
    spans = [(0.1, 0.9), (0.5, 1.3), (1.1, 1.9)]
    ref = decode_spans(sv_media[name], spans, 8.0, (64, 64), frames=6)
    got = decode_spans_torchcodec(sv_media[name], spans, 8.0, (64, 64), frames=6, device="cuda")
    for r, g in zip(ref, got):
        assert [frame_index(f) for f in g.frames] == [frame_index(f) for f in r.frames]
        np.testing.assert_allclose(g.source_times, r.source_times, atol=1e-6)


def test_on_a_gpu_real_clips_and_the_scan_match_pyav():
    from vidrd_data.media.gpu_scan import scan_on_device
    from vidrd_data.media.scan import ScanConfig, scan_video

    path = real_clip("bikes.mp4")
    _cuda_decoder_or_skip(path)
    ref = decode_spans(path, [(0.1, 1.1), (3.05, 4.05)], 8.0, (256, 192), frames=8)
    got = decode_spans_torchcodec(path, [(0.1, 1.1), (3.05, 4.05)], 8.0, (256, 192), frames=8, device="cuda")
    for r, g in zip(ref, got):
        assert g.source_times == pytest.approx(r.source_times, abs=1e-6)
        assert np.abs(g.frames.astype(int) - r.frames).mean() < 6.0  # NVDEC + NPP colour conversion + resize
    cfg = ScanConfig(clip_fps=8.0, clip_size=(128, 96))
    a, b = scan_video(str(path), cfg), scan_on_device(str(path), cfg, "cuda")
    assert b.info["decoded_on"] == "cuda" and (b.duration, b.decoded_frames) == (a.duration, a.decoded_frames)
    assert len(b.cuts) == len(a.cuts) and all(abs(x - y) <= 0.08 for x, y in zip(a.cuts, b.cuts))


def test_task_decode_device(monkeypatch):
    import ray

    assert task_decode_device("cpu") is None and task_decode_device("cuda") == "cuda"
    with pytest.raises(ValueError, match="decoder must be one of"):
        task_decode_device("nvdec")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    for env, want in [("", None), ("0", "cuda"), ("-1", None), ("1,2", "cuda")]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
        assert task_decode_device("auto") == want, env
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert task_decode_device(None) is None
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # a left-over variable: Ray's assignment decides
    assert task_decode_device("auto") is None
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [1])
    assert task_decode_device("auto") == "cuda"


def test_decode_gpu_share():
    assert decode_gpu_share(0, 16, 0) == 0.0  # CPU-only cluster
    assert decode_gpu_share(1, 16, 1) == 0.0  # the one GPU holds a model actor
    assert decode_gpu_share(1, 16, 0) == 0.0625  # every CPU slot can run a decoding task
    assert decode_gpu_share(8, 96, 2) == 0.0625
    assert decode_gpu_share(1, 3, 0) * 3 <= 1  # never more than the free GPUs in all
    assert decode_gpu_share(1.5, 4, 1) == 0.0  # half a GPU left beside a model: not used


def _plan(gpus: float, cpus: float, decoder: str | None, model_device: str = "auto", sources: int = 1):
    """The steps of `sources` copies of a cut -> encode -> BLIP-2 recipe on a cluster of `gpus` / `cpus`, as a build
    plans them once Ray is up (model actors then ask for a GPU where the cluster has one)."""
    from vidrd_data.cluster import fit_gpus
    from vidrd_data.runtime import plan_steps
    from vidrd_data.stages.base import StageContext

    models = {"blip2": {"device": model_device, "path": "x"}, "clip": {"device": model_device, "path": "y"}}
    ctx = StageContext(clip={"fps": 8.0, "size": [64, 64], "frames": 8}, models=models)
    cut = {} if decoder is None else {"decoder": decoder}
    lists = []
    for k in range(sources):
        specs = [("cut", cut), ("encode", {}), ("caption_blip2", {"model": "blip2", "max_new_tokens": 4 + k})]
        lists.append(plan_steps(specs, ctx, models))
    fit_gpus(lists, gpus, cpus)
    return lists


@pytest.fixture
def fake_cluster(monkeypatch):
    """ray.is_initialized / cluster_resources / nodes answering for a cluster of the test's making."""
    import ray

    size = {"GPU": 0.0, "CPU": 2.0}
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "cluster_resources", lambda: dict(size))
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": dict(size)}])
    return size


def _sized(fake_cluster, gpus, cpus):
    fake_cluster.update(GPU=float(gpus), CPU=float(cpus))
    return gpus, cpus


def test_plan_gives_decoding_a_share_only_of_gpus_the_models_leave(fake_cluster):
    from vidrd_data.runtime import task_resources

    (steps,) = _plan(*_sized(fake_cluster, 0, 2), None)  # CPU-only: unchanged
    assert steps[0].resources.num_gpus == 0 and "num_gpus" not in task_resources(steps)
    (steps,) = _plan(*_sized(fake_cluster, 1, 16), None)  # one GPU, held by the captioner's actor
    assert steps[1].uses_model and steps[1].resources.num_gpus == 1 and steps[0].resources.num_gpus == 0
    (steps,) = _plan(*_sized(fake_cluster, 4, 16), None)  # three left: each of 16 CPU slots may decode on one
    assert steps[0].resources.num_gpus == pytest.approx(3 / 16) and task_resources(steps)["num_gpus"] == 3 / 16
    (steps,) = _plan(*_sized(fake_cluster, 1, 16), None, model_device="cpu")  # the GPU left to decoding
    assert steps[1].resources.num_gpus == 0 and steps[0].resources.num_gpus == 0.0625
    (steps,) = _plan(*_sized(fake_cluster, 4, 16), "cpu")
    assert steps[0].resources.num_gpus == 0
    with pytest.raises(ValueError, match="decoder: cuda, but no whole GPU is free"):
        _plan(*_sized(fake_cluster, 1, 16), "cuda")


def test_model_actors_share_the_gpus_instead_of_waiting_for_them(fake_cluster):
    """Three distinct GPU pools (three sources' captioners) on one GPU: a third each, so all can be alive at once;
    on two GPUs half each (two on one GPU, one on the other); enough GPUs: one each."""
    for gpus, share in [(1, 1 / 3), (2, 0.5), (3, 1.0), (8, 1.0)]:
        lists = _plan(*_sized(fake_cluster, gpus, 16), "cpu", sources=3)
        shares = [s.resources.num_gpus for steps in lists for s in steps if s.uses_model]
        assert shares == [pytest.approx(share)] * 3, gpus
    lists = _plan(*_sized(fake_cluster, 1, 16), None, sources=1)  # one actor, one GPU: whole, nothing for decoding
    assert [s.resources.num_gpus for s in lists[0]] == [0.0, 1.0]


@pytest.mark.timeout(120)
def test_ray_task_with_a_gpu_share_decodes_there(sv_media, tmp_path):
    """A real Ray with one (declared) GPU: the planned cut step gets a share, Ray assigns the task GPU 0, the
    stage decodes for that device, and, with no CUDA decoder on this machine, its clip is PyAV's, bit for bit."""
    script = textwrap.dedent(f"""
        import json, os, ray, numpy as np
        from vidrd_data.items import Item
        from vidrd_data.media.decode import decode_spans
        from vidrd_data.cluster import fit_gpus
        from vidrd_data.runtime import plan_steps, task_resources
        from vidrd_data.stages.base import StageContext, get_stage
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
        ctx = StageContext(clip={{"fps": 8.0, "size": [64, 64], "frames": 8}})
        steps = plan_steps([("cut", {{}})], ctx, {{}})
        fit_gpus([steps], 1.0, 2.0)
        def run():
            import torch
            from vidrd_data.media.gpu_decode import task_decode_device
            it = Item(key="a", source="s", input_id="a", data={{"path": {str(sv_media["cfr"])!r}, "span": [0.3, 1.3]}})
            out = get_stage("cut")({{}}, ctx).process_batch([it])[0]
            return ray.get_gpu_ids(), task_decode_device("auto"), torch.cuda.is_available(), out.data["frames"]
        gpu_ids, device, cuda, frames = ray.get(ray.remote(run).options(**task_resources(steps)).remote())
        ref = decode_spans({str(sv_media["cfr"])!r}, [(0.3, 1.3)], 8.0, (64, 64), frames=8)[0].frames
        print(json.dumps({{"share": task_resources(steps).get("num_gpus"), "gpu_ids": gpu_ids, "device": device,
                          "cuda": cuda, "equal": bool(np.array_equal(frames, ref)), "shape": list(frames.shape)}}))
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=110)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["share"] == 0.5 and got["gpu_ids"] == [0] and got["device"] == "cuda" and got["shape"] == [8, 64, 64, 3]
    if not got["cuda"]:
        assert got["equal"]
