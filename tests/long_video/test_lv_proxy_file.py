"""A long video's clip frames kept in a scratch file between its scan and its cut (decode once at any length).

Over the in-memory budget the scan writes the clip-grid frames to a file (media.proxy_file) and the cut reads
them by slice: the same frames bit for bit as the in-memory proxy and as decoding again, in one pass or in time
ranges; a reader elsewhere (another node, a gone file) decodes instead; the chunk task that made the file
removes it, and a build leaves nothing of its run behind.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.long_video.test_lv_build import GEN, OVERRIDES, REPO
from tests.scene_videos import write_scene_video
from vidrd_data.media import proxy_file
from vidrd_data.media.proxy_file import FrameFile, ProxyFrames
from vidrd_data.media.scan import ScanConfig, plan_ranges, scan_video

PARTS = [("scene", 0, 3.0), ("scene", 1, 4.0), ("dissolve", 1.0), ("scene", 2, 5.0), ("scene", 3, 4.0),
         ("scene", 4, 5.0)]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("proxy") / "scenes.mp4"
    write_scene_video(path, PARTS, fps=25, size=(192, 108))
    return path


def _cfg(**kw) -> ScanConfig:
    return ScanConfig(clip_fps=25.0, clip_size=(48, 32), **kw)  # the source has 13.5x its pixels


def test_file_proxy_holds_the_in_memory_proxys_frames(video, tmp_path):
    ref = scan_video(str(video), _cfg(proxy_max_mb=1024))
    got = scan_video(str(video), _cfg(proxy_max_mb=0.01), scratch=tmp_path)
    assert ref.proxy is not None and got.proxy is None and got.proxy_file is not None
    assert len(got.proxy_file) == len(ref.proxy) == got.proxy_file.pieces[0].count
    assert np.array_equal(got.proxy_file.read(0, len(ref.proxy)), ref.proxy)
    assert np.array_equal(got.proxy_file.read(37, 61), ref.proxy[37:61])
    assert got.cuts == ref.cuts and got.keyframes == ref.keyframes


def test_ranges_write_one_piece_each_and_read_across_them(video, tmp_path):
    ref = scan_video(str(video), _cfg(proxy_max_mb=1024))
    cfg = _cfg(proxy_max_mb=0.01, min_scene_len_s=0.3, transition_window_s=0.3)
    ranges = plan_ranges(cfg, ref.duration, ref.keyframes or [6.0, 12.0], 3, 4.0)
    assert len(ranges) >= 2
    got = scan_video(str(video), cfg, ranges, scratch=tmp_path)
    assert len(got.proxy_file.pieces) == len(ranges) and len(got.proxy_file) == len(ref.proxy)
    first = got.proxy_file.pieces[0].count
    assert np.array_equal(got.proxy_file.read(first - 5, first + 5), ref.proxy[first - 5:first + 5])
    assert np.array_equal(got.proxy_file.read(0, len(ref.proxy)), ref.proxy)


def test_budgets_and_where_it_can_be_read(video, tmp_path, monkeypatch):
    assert scan_video(str(video), _cfg(proxy_max_mb=0.01)).proxy_file is None  # no scratch folder: none
    assert scan_video(str(video), _cfg(proxy_max_mb=0.01, proxy_file_max_mb=1.0), scratch=tmp_path).proxy_file is None
    # a source of less than PROXY_FILE_MIN_PIXEL_RATIO times the clip's pixels decodes again (cheaper here)
    small = ScanConfig(clip_fps=25.0, clip_size=(96, 64), proxy_max_mb=0.01)
    assert scan_video(str(video), small, scratch=tmp_path).proxy_file is None
    # ... unless the stage's proxy_file_min_pixel_ratio says so (it reaches the scan through the stage's params)
    from vidrd_data.stages.base import StageContext, get_stage

    forced = get_stage("shot_detect")({"proxy_max_mb": 0.01, "proxy_file_min_pixel_ratio": 0},
                                      StageContext(clip={"fps": 25.0, "size": [96, 64], "frames": 8})).cfg
    assert forced.proxy_file_min_pixel_ratio == 0
    assert scan_video(str(video), forced, scratch=tmp_path).proxy_file is not None
    got = scan_video(str(video), _cfg(proxy_max_mb=0.01), scratch=tmp_path)
    assert got.proxy_file.read(0, 4) is not None
    monkeypatch.setattr(proxy_file, "current_node", lambda: "some-other-node")
    assert got.proxy_file.read(0, 4) is None  # another node's disk: the caller decodes instead
    monkeypatch.undo()
    Path(got.proxy_file.pieces[0].path).unlink()
    assert got.proxy_file.read(0, 4) is None  # gone (a retry on a fresh worker)


def test_frame_file_tail_delete_and_shape_check(tmp_path):
    f = FrameFile(tmp_path / "f.u8", (2, 3, 3), proxy_file.current_node())
    for k in range(5):
        f.append(np.full((2, 3, 3), k, np.uint8))
    del f[3:]
    piece = f.close()
    assert piece.count == 3 and (tmp_path / "f.u8").stat().st_size == 3 * 18
    assert ProxyFrames((piece,)).read(0, 3)[:, 0, 0, 0].tolist() == [0, 1, 2]
    assert ProxyFrames((piece,)).read(2, 4) is None  # past what the file holds
    with pytest.raises(ValueError, match="expected uint8"):
        FrameFile(tmp_path / "g.u8", (2, 3, 3), "n").append(np.zeros((3, 3, 3), np.uint8))


def _build(root: Path, name: str, video: Path, tiny_minigpt4, **shot_detect) -> Path:
    from vidrd_data.build import build

    doc = {"name": name, "output": str(root / name), "clip": {"fps": 25, "size": [48, 32], "min_seconds": 0.5,
                                                              "max_seconds": 4.0},
           "shard": {"max_samples": 64}, "models": {"minigpt4": {"path": str(tiny_minigpt4), "batch_size": 4}},
           "sources": [{"name": "longform", "kind": "long_video", "recipe": str(REPO / "pipelines/long_video.yaml"),
                        "input": {"format": "list", "path": str(root / "list.txt"), "allow_outside_root": True},
                        "overrides": {**OVERRIDES, "caption": {"model": "minigpt4", "minigpt4": GEN},
                                      "shot_detect": shot_detect}}]}
    (root / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    build(root / f"{name}.yaml", progress=False, out=lambda s: None)
    return root / name


def _video_meta(sample: dict) -> dict:
    return json.loads(json.loads(sample["json"])["details"])["segmentation"]["video"]


def test_build_cuts_from_the_file_the_frames_decoding_gives(video, tmp_path, tiny_minigpt4, ray_session):
    from vidrd_data import scratch
    from vidrd_data.media.encode import decode_mp4_bytes
    from vidrd_data.sink import iter_samples

    shutil.copy(video, tmp_path / "v.mp4")
    (tmp_path / "list.txt").write_text("v.mp4\n")
    before = set(scratch.root().iterdir()) if scratch.root().exists() else set()
    outs = {"file": _build(tmp_path, "file", video, tiny_minigpt4, proxy_max_mb=0.3),
            "decode": _build(tmp_path, "decode", video, tiny_minigpt4, proxy_max_mb=0.3, proxy_file_max_mb=0)}
    samples = {k: {s["key"]: s for s in iter_samples(str(v))} for k, v in outs.items()}
    assert samples["file"] and samples["file"].keys() == samples["decode"].keys()
    for key, s in samples["file"].items():
        assert _video_meta(s)["decoded_once"] is True
        assert _video_meta(samples["decode"][key])["decoded_once"] is False
        a, _ = decode_mp4_bytes(s["mp4"])
        b, _ = decode_mp4_bytes(samples["decode"][key]["mp4"])
        # the clip's frames before encoding are equal (the scan tests above); libx264 itself does not always give
        # the same bytes for the same frames from one run to the next here (a few levels at 48x32), so each frame
        # is checked to be nearer the other build's same frame than its neighbours: a clip off by a frame fails
        assert a.shape == b.shape, key
        d = lambda i, j: float(np.abs(a[i].astype(int) - b[j]).mean())  # noqa: E731
        for i in range(len(a)):
            near = [d(i, j) for j in (i - 1, i + 1) if 0 <= j < len(b)]
            assert d(i, i) <= min(near) + 0.5, (key, i, d(i, i), near)
    after = set(scratch.root().iterdir()) if scratch.root().exists() else set()
    assert after <= before, f"scratch left behind: {sorted(after - before)}"


class _FullDisk:
    """An open file whose every write fails as on a full disk."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def truncate(self, n):
        return self.real.truncate(n)

    def close(self):
        self.real.close()


def test_a_full_disk_while_writing_means_decoding_again(video, tmp_path, monkeypatch):
    """ENOSPC in the middle of the scan: the scan's own results stand, no proxy, no file left behind."""
    real_write = proxy_file.FrameFile.append
    calls = {"n": 0}

    def append(self, frame):
        calls["n"] += 1
        if calls["n"] == 40:  # the disk fills up: every later write fails
            self._f = _FullDisk(self._f)
        return real_write(self, frame)

    monkeypatch.setattr(proxy_file.FrameFile, "append", append)
    ref = scan_video(str(video), _cfg(proxy_max_mb=1024))
    got = scan_video(str(video), _cfg(proxy_max_mb=0.01), scratch=tmp_path)
    assert got.proxy_file is None and got.proxy is None and got.info["proxy_over_budget"]
    assert got.cuts == ref.cuts and got.keyframes == ref.keyframes and got.duration == ref.duration
    assert not list(tmp_path.rglob("*.u8"))


def test_a_proxy_file_only_inside_a_build(ray_session):
    """Stages called under Ray outside a build (no run id: no driver removes the run's folder, no chunk task
    releases it) keep no scratch file; inside a build they get a private folder under the run's."""
    from vidrd_data import scratch
    from vidrd_data.stages.base import StageContext, get_stage

    clip = {"fps": 25, "size": [64, 64], "min_seconds": 1.0, "max_seconds": 4.0}
    assert get_stage("shot_detect")({}, StageContext(clip=clip))._scratch() is None
    got = get_stage("shot_detect")({}, StageContext(clip=clip, run_id="scratchtest"))._scratch()
    try:
        assert got is not None and got.parent == scratch.root() / "scratchtest" and oct(got.stat().st_mode)[-3:] == "700"
    finally:
        scratch.remove_run("scratchtest")


WHOLE_SHOTS = {"internal_min_sim": -1.0, "merge_min_sim": 2.0, "static_min_sim": 2.0, "redundant_min_sim": 2.0,
               "min_segment_s": 0.0, "max_segment_s": 0.0, "trim_s": 0.0}


@pytest.mark.parametrize("clip, segment, shot_detect, expect", [
    # every segmentation rule off, clips as long as a shot: whole-shot output, the file from 3x the clip's pixels
    ({"fps": 25, "size": [256, 256], "max_seconds": 3600}, WHOLE_SHOTS, {}, 3.0),
    ({"fps": 25, "size": [256, 256], "frames": None}, WHOLE_SHOTS, {}, 3.0),  # no frames, no max_seconds: no cap
    # ... but what the recipe or the manifest sets wins
    ({"fps": 25, "size": [256, 256], "min_seconds": 0.2}, WHOLE_SHOTS, {"proxy_file_min_pixel_ratio": 8.0}, 8.0),
    # the recipe's own rules drop and merge shots (clips covered ~10 % of the bench's video): the default rule
    ({"fps": 25, "size": [256, 256], "min_seconds": 0.2}, {}, {}, None),
    ({"fps": 25, "size": [256, 256], "min_seconds": 0.2}, WHOLE_SHOTS | {"merge_min_sim": 0.9}, {}, None),
    ({"fps": 25, "size": [256, 256], "min_seconds": 0.2}, WHOLE_SHOTS | {"max_segment_s": 5.0}, {}, None),  # shots run to 20 s
    ({"fps": 25, "size": [256, 256], "max_seconds": 4.0}, WHOLE_SHOTS, {}, None),
    ({"fps": 8, "size": [256, 256], "frames": 16}, WHOLE_SHOTS, {}, None),  # fixed-length clips: a part of a shot
    ({"fps": 8, "size": [256, 256]}, WHOLE_SHOTS, {}, None),  # (the clip spec's default: 16 frames)
    ({"fps": 25, "size": [256, 256], "min_seconds": 0.2}, WHOLE_SHOTS, {"max_shot_s": 4.0}, 3.0),  # forced cuts keep shots under the cap
])
def test_whole_shot_output_takes_the_file_from_smaller_sources(tmp_path, clip, segment, shot_detect, expect):
    """The decode-once file's pixel rule follows how much of a video the clips cover (media.scan's figures):
    derived when the manifest is resolved, visible in the resolved recipe, and what reaches the scan."""
    from vidrd_data.manifest import load_manifest
    from vidrd_data.stages.base import StageContext, get_stage

    (tmp_path / "list.txt").write_text("/nowhere/video.mp4\n")
    doc = {"name": "t", "output": str(tmp_path / "out"), "clip": clip,
           "sources": [{"name": "long", "kind": "long_video", "recipe": str(REPO / "pipelines/long_video.yaml"),
                        "input": {"format": "list", "path": str(tmp_path / "list.txt")},
                        "overrides": {"segment_shots": segment, "shot_detect": shot_detect,
                                      "embed_shots": {"model": "color_histogram"}}}]}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(doc))
    resolved = load_manifest(tmp_path / "m.yaml")
    params = {s.stage: s.params for s in resolved.sources[0].recipe.stages}["shot_detect"]
    assert params.get("proxy_file_min_pixel_ratio") == expect
    cfg = get_stage("shot_detect")(params, StageContext(clip=resolved.manifest.clip.model_dump(mode="json"))).cfg
    assert cfg.proxy_file_min_pixel_ratio == (8.0 if expect is None else expect)
