"""Long videos: every delivered clip lies inside one shot; dissolves and fades are trimmed out with the footage
on both sides kept; duration rules count output frames; the source's picture is recorded (issue 12).

Inputs are made here (tests/scene_videos.py): distinct generated scenes joined by hard cuts, a dissolve and
a fade through black, with the truth known to the frame.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.long_video.lv_helpers import run_stages
from tests.long_video.test_lv_segmentation import HIST_RULES, _video_item
from tests.scene_videos import MIXED_TIMELINE, mean_colour_scene, write_scene_video
from vidrd_data.segmentation import SegmentRules, Shot, grid_frames, segment_shots, shots_from_cuts
from vidrd_data.stages.base import StageContext

CTX = StageContext(clip={"fps": 8, "size": [64, 64], "frames": 8})
STEPS = [("shot_detect", {}), ("embed_shots", {"model": "color_histogram"}), ("segment_shots", HIST_RULES),
         ("cut_segments", {})]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    path = tmp_path_factory.mktemp("lv_scenes") / "scenes.mp4"
    return path, write_scene_video(path, MIXED_TIMELINE)


@pytest.mark.parametrize("proxy_mb", [64, 0], ids=["decode-once", "re-decode-span"])
def test_clips_lie_inside_one_shot_and_both_sides_of_each_transition_are_kept(scenes, proxy_mb):
    path, truth = scenes
    steps = [("shot_detect", {"proxy_max_mb": proxy_mb}), *STEPS[1:]]
    items = run_stages([_video_item(path)], steps, CTX)
    assert not [i.reason for i in items if i.status == "failed"]
    assert not [i for i in items if (i.reason or "").startswith("internal_transition")]
    clips = [i for i in items if i.alive]
    video = clips[0].meta["segmentation"]["video"]
    shown = []
    for c in clips:
        start, end = c.meta["source"]["span"]
        assert not any(start < t < end for t in video["cuts"]), (start, end, video["cuts"])
        assert not any(a < end and start < b for a, b in video["transitions"]), (start, end, video["transitions"])
        scenes_at = {truth.scene_at(start + k / CTX.clip["fps"]) for k in range(len(c.data["frames"]))}
        assert len(scenes_at) == 1 and None not in scenes_at, (start, end, scenes_at)
        assert {mean_colour_scene(f) for f in c.data["frames"]} == scenes_at  # no blended frame
        shown.append(scenes_at.pop())
    assert sorted(shown) == [k for _, _, k in truth.shots]  # every scene, both sides of every transition


def test_detected_transitions_cover_the_true_ones(scenes):
    path, truth = scenes
    [video] = run_stages([_video_item(path)], STEPS[:1], CTX)
    found = video.meta["segmentation"]["video"]["transitions"]
    assert len(found) == len(truth.transitions)
    for (a, b), (ta, tb) in zip(found, truth.transitions):
        assert a <= ta + 1e-6 and tb - 1e-6 <= b and (ta - a) + (b - tb) < 1.6, ((a, b), (ta, tb))


def test_the_json_records_the_source_picture(scenes):
    path, truth = scenes
    [video] = run_stages([_video_item(path)], STEPS[:1], CTX)
    probe = video.meta["probe"]  # details.probe, as in the short-video json
    assert (probe["width"], probe["height"], probe["codec"]) == (192, 108, "h264")
    assert probe["fps"] == pytest.approx(25) and probe["usable_duration"] == pytest.approx(truth.duration, abs=0.05)


def test_too_short_and_too_large_videos_are_filtered_with_one_row(tmp_path):
    short = tmp_path / "short.mp4"
    write_scene_video(short, [("scene", 0, 0.6)])
    [a] = run_stages([_video_item(short)], STEPS, CTX)
    assert (a.status, a.stage) == ("filtered", "shot_detect")
    assert a.reason.startswith("too_short: video is 0.60 s, shorter than one 1.00 s clip"), a.reason
    [b] = run_stages([_video_item(short)], [("shot_detect", {"max_pixels": 10_000})], CTX)
    assert (b.status, b.stage) == ("filtered", "shot_detect") and b.reason.startswith("too_large: resolution 192x108")


# ------------------------------------------------------------------------------------------- pure rules

def test_transitions_split_shots_at_their_middle_and_leave_bodies_outside():
    shots = shots_from_cuts(20.0, [3.0, 9.5, 15.0], 0.0, [(-0.1, 0.8), (9.0, 10.0), (12.0, 13.0), (19.5, 20.0)])
    assert [(s.start, s.end, s.cut) for s in shots] == [(0, 3, "start"), (3, 9.5, "hard"), (9.5, 12.5, "gradual"),
                                                        (12.5, 15, "gradual"), (15, 20, "hard")]
    assert [(s.body_start, s.body_end) for s in shots] == [(0.8, 3), (3, 9.0), (10.0, 12.0), (13.0, 15), (15, 19.5)]


def test_duration_rules_count_output_frames():
    # 2.0 s of body, but off the 8 fps grid: [0.03, 2.03) holds only 15 whole frames
    shots = [Shot(0, 0.0, 0.03, "start"), Shot(1, 0.03, 2.03, "hard"), Shot(2, 2.03, 6.0, "hard")]
    emb = np.stack([np.eye(3, dtype=np.float32)[[i, i]] for i in range(3)])
    rules = SegmentRules(min_segment_s=2.0, trim_s=0.0, static_min_sim=1.01, redundant_min_sim=1.01)
    assert [s.status for s in segment_shots(shots, emb, rules)] == ["too_short", "keep", "keep"]  # seconds
    segs = segment_shots(shots, emb, rules, fps=8)
    assert [s.status for s in segs] == ["too_short", "too_short", "keep"]
    assert "15 frames at 8 fps" in segs[1].reason and "< 16" in segs[1].reason


@pytest.mark.parametrize("seed", range(5))
def test_every_kept_segment_holds_its_clip_inside_one_shot_body(seed):
    rng = np.random.default_rng(seed)
    duration = 60.0
    cuts = sorted(rng.uniform(0.5, duration - 0.5, 12).round(3))
    trans = [(c - 0.4, c + 0.4) for c in rng.uniform(2, duration - 2, 3)]
    shots = shots_from_cuts(duration, list(cuts), 20.0, trans)
    k = len(shots)
    base = rng.normal(size=(k, 8)).astype(np.float32)
    base[1::3] = base[0:-1:3][: len(base[1::3])]  # some neighbours alike: merged
    emb = np.stack([base, base + 0.05 * rng.normal(size=base.shape)], 1)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    fps, rules = 8.0, SegmentRules(min_segment_s=1.3, trim_s=0.2, static_min_sim=1.01, redundant_min_sim=1.01)
    for seg in segment_shots(shots, emb, rules, fps=fps):
        if not seg.kept:
            continue
        body = next(s for s in shots if s.id == seg.clip_shot)
        assert body.body_start + rules.trim_s - 1e-9 <= seg.clip_start < seg.clip_end <= body.body_end - rules.trim_s + 1e-9
        assert grid_frames(seg.clip_start, seg.clip_end, fps) >= math.ceil(rules.min_segment_s * fps)
        assert not any(seg.clip_start < c < seg.clip_end for c in cuts)
        assert not any(a < seg.clip_end and seg.clip_start < b for a, b in trans)
