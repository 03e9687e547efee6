"""Short videos: clips are placed inside shots, never across a hard cut, a dissolve or a fade (issue 12).

The inputs are made here: visually distinct generated scenes (tests/scene_videos.py) joined by hard cuts,
a dissolve and a fade through black, with the true shot and transition intervals known to the frame.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.scene_videos import MIXED_TIMELINE, SceneTruth, mean_colour_scene, write_scene_video
from vidrd_data.clip_plan import NoRoom, Window, plan_spans
from vidrd_data.items import Item, make_key
from vidrd_data.runtime import apply_stage
from vidrd_data.stages.base import StageContext, make_stage

CTX = StageContext(clip={"fps": 8.0, "size": [64, 64], "frames": 8})


def _item(path) -> Item:
    return Item(key=make_key("sv", path.name), source="sv", input_id=path.name, data={"path": str(path)},
                meta={"source": {"kind": "video", "source_id": path.name, "dataset": "sv"}, "label": "Scenes"})


def _run(items, steps, ctx=CTX):
    for name, params in steps:
        items = apply_stage(make_stage(name, params, ctx), items)
    return items


def _clips(path, plan: dict, ctx=CTX):
    steps = [("probe", {}), ("detect_shots", {}), ("plan_clips", plan), ("cut", {"keyframes": [0.0, 1.0]})]
    return _run([_item(path)], steps, ctx)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    path = tmp_path_factory.mktemp("scenes") / "scenes.mp4"
    return path, write_scene_video(path, MIXED_TIMELINE)


def _assert_inside_one_shot(clip, truth, fps):
    start, end = clip.meta["source"]["span"]
    shots = clip.meta["shots"]
    # never across a detected cut or transition ...
    assert not any(start < c < end for c in shots["cuts"]), (start, end, shots["cuts"])
    assert not any(a < end and start < b for a, b in shots["transitions"]), (start, end, shots["transitions"])
    # ... and, by the truth, every frame time lies in one pure-scene interval
    scenes = {truth.scene_at(start + k / fps) for k in range(len(clip.data["frames"]))}
    assert len(scenes) == 1 and None not in scenes, (start, end, scenes)
    # the pixels agree: every frame shows that scene's colour, none a blend
    seen = {mean_colour_scene(f) for f in clip.data["frames"]}
    assert seen == scenes, (start, end, seen, scenes)
    return scenes.pop()


def test_detected_cuts_and_transitions_match_the_truth(scenes):
    path, truth = scenes
    [video] = _run([_item(path)], [("probe", {}), ("detect_shots", {})])
    found = video.meta["shots"]
    # a cut found inside a transition (the fade's black cut to the next scene) belongs to the transition
    hard = [c for c in found["cuts"] if not any(a <= c <= b for a, b in found["transitions"])]
    assert hard == pytest.approx(truth.cuts, abs=0.05)
    assert len(found["transitions"]) == len(truth.transitions)
    for (a, b), (ta, tb) in zip(found["transitions"], truth.transitions):
        assert a <= ta + 1e-6 and b >= tb - 1e-6, ((a, b), (ta, tb))  # covers every blended frame
        assert (ta - a) + (b - tb) < 1.6  # and not much more (the pad on each side)


def test_multi_clips_avoid_cuts_dissolve_and_fade_and_keep_both_sides(scenes):
    path, truth = scenes
    clips = _clips(path, {"policy": "multi", "max_clips": 6})
    assert len(clips) == 6 and all(c.alive for c in clips)
    shown = [_assert_inside_one_shot(c, truth, CTX.clip["fps"]) for c in clips]
    # one clip per scene: the footage on both sides of the dissolve and the fade is kept
    assert sorted(shown) == [k for _, _, k in truth.shots]
    assert all(len(c.meta["source"]["shot_ids"]) == 1 for c in clips)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
@pytest.mark.parametrize("kind", ["dissolve", "fade", "fadeblack"])
def test_ffmpeg_xfade_transitions_are_kept_out_of_clips(tmp_path, kind):
    """ffmpeg's own transitions (xfade: random-pixel dissolve, crossfade, fade through black) between three
    generated scenes of 4 s: [3, 4) and [6.4, 7.0) are transitions."""
    parts = [tmp_path / f"s{k}.mp4" for k in range(3)]
    for k, p in enumerate(parts):
        write_scene_video(p, [("scene", k, 4.0)])
    out = tmp_path / f"xfade_{kind}.mp4"
    graph = (f"[0][1]xfade=transition={kind}:duration=1:offset=3[a];"
             f"[a][2]xfade=transition={kind}:duration=0.6:offset=6.4[b]")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *[a for p in parts for a in ("-i", str(p))], "-filter_complex", graph,
                    "-map", "[b]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", str(out)], check=True)
    truth = SceneTruth(10.4, shots=[(0.0, 3.0, 0), (4.0, 6.4, 1), (7.0, 10.4, 2)], transitions=[(3.0, 4.0), (6.4, 7.0)])
    clips = _clips(out, {"policy": "multi", "max_clips": 3})
    assert sorted(_assert_inside_one_shot(c, truth, CTX.clip["fps"]) for c in clips) == [0, 1, 2]


def test_center_clip_moves_off_a_transition_in_the_middle(scenes, tmp_path):
    path = tmp_path / "mid_dissolve.mp4"
    truth = write_scene_video(path, [("scene", 0, 2.0), ("dissolve", 1.0), ("scene", 1, 2.0)])
    [clip] = _clips(path, {"policy": "center"})
    _assert_inside_one_shot(clip, truth, CTX.clip["fps"])


def test_a_video_shorter_than_a_clip_or_without_a_long_enough_shot_is_filtered(tmp_path):
    short = tmp_path / "short.mp4"
    write_scene_video(short, [("scene", 0, 0.6)])
    choppy = tmp_path / "choppy.mp4"
    write_scene_video(choppy, [("scene", k, 0.8) for k in range(4)])  # 3.2 s, but every shot < the 1 s clip
    [a] = _clips(short, {"policy": "multi", "max_clips": 2})
    assert (a.status, a.stage) == ("filtered", "plan_clips")
    assert a.reason.startswith("too_short: video is 0.60 s, shorter than one 1.00 s clip"), a.reason
    [b] = _clips(choppy, {"policy": "multi", "max_clips": 2})
    assert (b.status, b.stage) == ("filtered", "plan_clips") and b.reason.startswith("too_short: no shot holds"), b.reason


def test_a_picture_over_the_size_limits_is_filtered_too_large(scenes):
    path, _ = scenes
    [item] = _run([_item(path)], [("probe", {"max_side": 160})])
    assert (item.status, item.stage) == ("filtered", "probe") and item.reason.startswith("too_large: resolution 192x108")


# -------------------------------------------------------------------------------- the planner, pure

@pytest.mark.parametrize("policy, k", [("center", 1), ("multi", 1), ("multi", 3), ("multi", 9)])
def test_planned_spans_stay_inside_their_window(policy, k):
    windows = [Window(0.0, 1.3, 0), Window(1.3, 4.05, 1), Window(5.2, 5.9, 2), Window(6.1, 9.0, 3)]
    clip = {"fps": 8.0, "frames": 8}
    spans = plan_spans(windows, clip, policy, k, gap=0.2)
    assert 1 <= len(spans) <= k and spans == sorted(spans)
    for s, e, shot in spans:
        w = next(w for w in windows if w.shot == shot)
        assert w.start <= s and e <= w.end + 1e-9 and e - s == pytest.approx(1.0)
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))
    if policy == "center":
        assert spans[0][2] == 1  # the window holding the middle (4.5 s) is too short: the nearest that fits
    with pytest.raises(NoRoom, match="no shot holds"):
        plan_spans([Window(0, 0.9, 0), Window(0.9, 1.8, 1)], clip, policy, k)
