"""Signal stages in-process: motion reflects the applied camera motion, CLIP alignment and the aesthetic head
record their scores (and filter on thresholds), the CLIP instance is shared, KEY.json has fixed score keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.curation.cur_helpers import moving_frames, scene
from vidrd_data.items import Item
from vidrd_data.sample_json import SCORE_KEYS, sample_json
from vidrd_data.stages.base import StageContext, get_stage

CLIP = {"fps": 8, "size": [96, 64], "frames": 16}


def make(name: str, params: dict, ctx: StageContext):
    stage = get_stage(name)(params, ctx)
    stage.setup()
    return stage


def run(stage, items):
    return stage.process_batch(items)


def pseudo_video(pan_range, kinds=("pan_left",), key="k"):
    ctx = StageContext(clip=CLIP)
    it = Item(key=key, source="s", input_id=key, data={"image": scene(5, (320, 200))})
    it = make("pseudo_motion", {"kinds": list(kinds), "zoom_range": [1.3, 1.3], "pan_range": pan_range,
                                 "easing": "linear"}, ctx).process(it)[0]
    return it, ctx


def test_motion_reflects_the_pseudo_motion_applied():
    it, ctx = pseudo_video([1.0, 1.0])
    w0, w1 = it.meta["pseudo_video"]["first_window"], it.meta["pseudo_video"]["last_window"]
    # the window's travel in output pixels, as a fraction of the width, per second of clip
    travel = abs(w1[0] - w0[0]) / (w0[2] - w0[0])
    expected = travel / ((CLIP["frames"] - 1) / CLIP["fps"])
    out = make("motion", {}, ctx).process(it)[0]
    got = out.meta["scores"]["motion_mean"]
    assert got == pytest.approx(expected, rel=0.2), (got, expected)
    slow, _ = pseudo_video([0.3, 0.3], key="k2")
    slow_m = make("motion", {}, ctx).process(slow)[0].meta["scores"]["motion_mean"]
    assert slow_m < 0.5 * got  # a shorter pan measures slower
    zoom, _ = pseudo_video([0.5, 0.5], kinds=("zoom_in",), key="k3")
    assert make("motion", {}, ctx).process(zoom)[0].meta["scores"]["motion_mean"] > 0.02


@pytest.mark.parametrize("kinds", [("pan_left",), ("zoom_in",), ("zoom_out+pan_up",)])
def test_pseudo_video_motion_comes_from_its_camera_path_and_agrees_with_optical_flow(kinds):
    """`auto` reads the exact motion of the rendered path (no flow); optical flow on the same frames measures
    about the same (it underestimates a little where the picture has no texture)."""
    exact, ctx = pseudo_video([1.0, 1.0], kinds=kinds, key="a")
    flow, _ = pseudo_video([1.0, 1.0], kinds=kinds, key="a")
    assert "path_motion" in exact.data
    m_exact = make("motion", {}, ctx).process(exact)[0].meta["scores"]
    m_flow = make("motion", {"method": "flow"}, ctx).process(flow)[0].meta["scores"]
    # on these 96x64 frames DIS finds 64-100% of it (DIS medium at full size: 88% of a zoom)
    assert 0.6 * m_exact["motion_mean"] <= m_flow["motion_mean"] <= 1.1 * m_exact["motion_mean"], (m_exact, m_flow)
    assert m_exact["motion_max"] >= m_exact["motion_mean"] > 0.01
    if kinds == ("pan_left",):  # a linear pan at constant zoom: every pair moves travel / (frames - 1)
        w0, w1 = exact.meta["pseudo_video"]["first_window"], exact.meta["pseudo_video"]["last_window"]
        expected = abs(w1[0] - w0[0]) / (w0[2] - w0[0]) / ((CLIP["frames"] - 1) / CLIP["fps"])
        assert m_exact["motion_mean"] == pytest.approx(expected, rel=2e-3)
        assert m_exact["motion_max"] == pytest.approx(m_exact["motion_mean"], rel=1e-6)


def test_motion_filters_static_and_extreme_clips():
    ctx = StageContext(clip={"fps": 24, "size": [160, 120], "frames": 24})
    static = np.repeat(np.asarray(scene(9, (160, 120)))[None], 24, 0)
    item = Item("static", "s", "static", data={"frames": static})
    out = make("motion", {"min_motion": 0.01}, ctx).process(item)[0]
    assert out.status == "filtered" and out.reason.startswith("near_static: motion_mean 0.0")
    assert out.meta["scores"]["motion_mean"] < 1e-3  # recorded on the filtered row too
    fast = Item("fast", "s", "fast", data={"frames": moving_frames(3, 24, speed=6.0)})
    out = make("motion", {"max_motion": 0.3}, ctx).process(fast)[0]
    # 6 px/frame on 160 px at 24 fps = 0.9 widths/s
    assert out.status == "filtered" and "extreme_motion" in out.reason
    assert out.meta["scores"]["motion_max"] == pytest.approx(0.9, rel=0.25)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import torch

    from vidrd_data.curation.aesthetic import build_mlp
    from vidrd_testing.demo_videos_long import prepare_tiny_clip

    d = tmp_path_factory.mktemp("curation_models")
    clip = prepare_tiny_clip(d)
    torch.manual_seed(0)
    head = build_mlp([32, 16, 8, 4, 2, 1])  # the LAION form, tiny: on the tiny CLIP's 32-dim embeddings
    torch.save(head.state_dict(), d / "aesthetic.pth")
    return {"clip": clip, "aesthetic": {"path": str(d / "aesthetic.pth")}}


def _clip_items(n=3):
    items = []
    for i in range(n):
        frames = moving_frames(i, 8, size=(64, 64))
        items.append(Item(f"c{i}", "s", f"c{i}", data={"frames": frames, "caption": f"a red ball number {i}"}))
    return items


def test_clip_align_and_aesthetic_record_scores_with_one_shared_clip(tiny_models, one_torch_thread):
    from vidrd_data.curation.aesthetic import aesthetic_scores, load_aesthetic_mlp
    from vidrd_data.curation.clip_text import embed_texts
    from vidrd_data.stages.long_video import EmbedShots

    ctx = StageContext(clip=CLIP, models=tiny_models)
    align = make("clip_align", {"frames": 4}, ctx)
    aes = make("aesthetic", {"frames": 4}, ctx)
    shots = EmbedShots({"model": "clip"}, ctx)
    if hasattr(shots, "setup"):
        shots.setup()
    # one open_clip instance per process: the long-video stage and the curation stages share it
    assert align._embedder() is aes._embedder() is shots.embedder
    items = run(aes, run(align, _clip_items()))
    emb = align._embedder()
    head = load_aesthetic_mlp(tiny_models["aesthetic"]["path"])
    for it in items:
        s = it.meta["scores"]
        frames = it.data["frames"][[0, 2, 5, 7]]  # 4 frames spread over 8
        fe = emb.embed(frames)
        mean = fe.mean(0) / np.linalg.norm(fe.mean(0))
        te = embed_texts(emb, [it.data["caption"]])[0]
        assert s["clip_text_sim"] == pytest.approx(float(mean @ te), abs=1e-5)
        assert s["aesthetic"] == pytest.approx(float(aesthetic_scores(head, fe).mean()), abs=1e-5)
        assert "clip_frame_emb" not in it.data
    lo = sorted(it.meta["scores"]["clip_text_sim"] for it in items)[1]
    filtered = run(make("clip_align", {"min_clip_score": lo}, ctx), _clip_items())
    assert [it.status for it in filtered].count("filtered") == 1
    assert any(it.reason and it.reason.startswith("low_clip_score: clip_text_sim") for it in filtered)


def test_model_stages_switch_off_without_their_model_and_fail_early_when_asked_for(tmp_path):
    from vidrd_data.curation.aesthetic import load_aesthetic_mlp

    bare = StageContext(clip=CLIP)
    assert not get_stage("clip_align").active({"enabled": "auto"}, bare)
    assert not get_stage("aesthetic").active({}, bare)
    assert get_stage("clip_align").active({"enabled": True}, bare)
    with pytest.raises(ValueError, match="models.clip.name is required"):
        get_stage("clip_align").check({"enabled": True}, bare)
    bad = tmp_path / "head.pth"
    import torch

    torch.save({"layers.0.weight": torch.zeros(4, 4)}, bad)
    with pytest.raises(ValueError, match="missing"):
        load_aesthetic_mlp(bad)


def test_key_json_has_fixed_score_keys_null_where_absent():
    it = Item("k", "s", "k", meta={"scores": {"motion_mean": 0.1, "motion_max": 0.2}})
    j = sample_json(it, "0", "h")
    assert set(j["scores"]) == set(SCORE_KEYS) >= {"clip_text_sim", "aesthetic", "motion_mean", "motion_max"}
    assert j["scores"]["motion_mean"] == 0.1 and j["scores"]["clip_text_sim"] is None
    json.dumps(j)
