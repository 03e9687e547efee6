"""Short-video readers and stages run directly (no Ray): spans, exact clips, BLIP-2 + label captions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vidrd_data.items import FAILED, OK
from vidrd_data.stages.base import StageContext, get_stage, make_stage
from vidrd_data.sources.base import get_reader


def reader(fmt: str, base: Path, **params):
    cls = get_reader("short_video", fmt)
    r = cls("sv", cls.Params.model_validate({"format": fmt, **params}), base)
    r.check()
    return r


def run(stage: str, items, ctx, **params):
    cls = get_stage(stage)
    cls.check(params, ctx)
    s = make_stage(stage, params, ctx)
    out = []
    for it in items:
        out.extend(s.process_batch([it]) if it.alive else [it])
    return out


@pytest.fixture(scope="module")
def class_root(sv_media, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ucf")
    for cls, names in {"PlayingGuitar": ["cfr", "vfr"], "ApplyEyeMakeup": ["rotated", "odd"]}.items():
        (root / cls).mkdir()
        for n in names:
            shutil.copy(sv_media[n], root / cls / sv_media[n].name)
    (root / "PlayingGuitar" / "notes.txt").write_text("not a video")
    return root


def test_class_folders_reader(class_root):
    items = reader("class_folders", class_root, root=str(class_root)).list_items()
    assert [(i.input_id, i.meta["label"]) for i in items] == [
        ("ApplyEyeMakeup/odd.mp4", "ApplyEyeMakeup"), ("ApplyEyeMakeup/rotated.mp4", "ApplyEyeMakeup"),
        ("PlayingGuitar/cfr.mp4", "PlayingGuitar"), ("PlayingGuitar/vfr.mp4", "PlayingGuitar")]
    assert len({i.key for i in items}) == 4 and all(i.alive for i in items)


def test_ucf_splits_reader(class_root, tmp_path):
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 PlayingGuitar\n")
    (splits / "trainlist01.txt").write_text("PlayingGuitar/cfr.mp4 2\nApplyEyeMakeup/gone.avi 1\n")
    (splits / "testlist01.txt").write_text("ApplyEyeMakeup/odd.mp4\n")
    train = reader("ucf_splits", tmp_path, root=str(class_root), splits_dir="ucfTrainTestlist").list_items()
    assert [(i.meta["label"], i.status) for i in train] == [("PlayingGuitar", OK), ("ApplyEyeMakeup", FAILED)]
    assert "gone.avi" in train[1].reason and "does not exist" in train[1].reason
    test = reader("ucf_splits", tmp_path, root=str(class_root), splits_dir=str(splits), split="test").list_items()
    assert [(i.input_id, i.meta["label"], i.status) for i in test] == [("ApplyEyeMakeup/odd.mp4", "ApplyEyeMakeup", OK)]


def test_kinetics_csv_reader(sv_media, tmp_path):
    videos = tmp_path / "k400" / "train" / "playing guitar"
    videos.mkdir(parents=True)
    shutil.copy(sv_media["cfr"], videos / "abc123_000010_000020.mp4")  # trimmed download
    shutil.copy(sv_media["vfr"], videos / "full456.mp4")  # untrimmed: the row's times are a segment
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                        "playing guitar,abc123,10,20,train\n"
                                        "playing guitar,full456,1,3,train\n"
                                        "abseiling,missing789,0,10,train\n"
                                        "abseiling,other,0,10,val\n")
    items = reader("kinetics_csv", tmp_path, csv="train.csv", root="k400", split="train").list_items()
    assert [i.status for i in items] == [OK, OK, FAILED]
    assert "segment" not in items[0].data and items[1].data["segment"] == [1.0, 3.0]
    assert items[0].meta["label"] == "playing guitar" and "missing789" in items[2].reason


def test_table_reader(sv_media, tmp_path):
    import pandas as pd

    pd.DataFrame({"path": [str(sv_media["cfr"]), "nowhere/x.mp4", str(sv_media["cfr"])],
                  "label": ["Surfing", "Surfing", "Diving"], "start": [None, None, 1.0],
                  "end": [None, None, 3.0]}).to_parquet(tmp_path / "t.parquet")
    items = reader("table", tmp_path, path="t.parquet", allow_outside_root=True).list_items()  # media live elsewhere
    assert [i.status for i in items] == [OK, FAILED, OK]
    assert items[2].data["segment"] == [1.0, 3.0] and items[0].key != items[2].key


def _probe_plan(items, ctx, **plan):
    return run("plan_clips", run("probe", items, ctx), ctx, **plan)


def test_plan_policies(class_root, sv_ctx):
    items = reader("class_folders", class_root, root=str(class_root), classes=["PlayingGuitar"]).list_items()
    centred = _probe_plan(items, sv_ctx, policy="center")
    for c in centred:  # ~4 s videos, 1 s clips, in the middle
        s, e = c.meta["source"]["span"]
        assert e - s == pytest.approx(1.0) and (s + e) / 2 == pytest.approx(c.meta["probe"]["duration"] / 2, abs=1e-3)
    multi = _probe_plan(items[:1], sv_ctx, policy="multi", max_clips=3, min_gap_seconds=0.2)
    spans = [c.meta["source"]["span"] for c in multi]
    assert len(spans) == 3 and all(0 <= s < e <= 4.0 and e - s == pytest.approx(1.0) for s, e in spans)
    assert all(a[1] + 0.2 <= b[0] + 1e-9 for a, b in zip(spans, spans[1:]))  # non-overlapping, gap kept
    assert len({c.key for c in multi}) == 3 and sum(c.weight for c in multi) == 1
    by_seconds = StageContext(clip={"fps": 8.0, "size": [64, 64], "frames": None, "min_seconds": 1.0,
                                    "max_seconds": 1.5})
    clips = run("cut", _probe_plan(items[:1], by_seconds, policy="multi", max_clips=5), by_seconds)
    spans = [c.meta["source"]["span"] for c in clips]
    assert len(spans) == 2 and all(e - s == pytest.approx(1.5) for s, e in spans)
    assert all(c.data["frames"].shape == (12, 64, 64, 3) for c in clips)  # whole 1.5 s at 8 fps


def test_cut_exact_frames_inside_source(class_root, sv_ctx):
    items = reader("class_folders", class_root, root=str(class_root)).list_items()
    clips = run("cut", _probe_plan(items, sv_ctx, policy="multi", max_clips=2), sv_ctx, keyframes=[0.0, 0.5, 1.0])
    assert len(clips) == 8 and all(c.alive for c in clips)
    for c in clips:
        assert c.data["frames"].shape == (8, 64, 64, 3) and c.data["keyframes"].shape == (3, 64, 64, 3)
        s, e = c.meta["source"]["span"]
        assert 0 <= s < e <= c.meta["probe"]["duration"] + 1e-6 and e - s == pytest.approx(8 / 8.0)
        times = c.meta["keyframes"]["source_times"]
        assert all(s - 0.101 < t < e for t in times)  # the frame on screen at s (VFR part: 10 fps)
    cfr = next(c for c in clips if c.input_id == "PlayingGuitar/cfr.mp4")
    s = cfr.meta["source"]["span"][0]
    assert cfr.meta["keyframes"]["index"] == [0, 4, 7]
    assert cfr.meta["keyframes"]["source_times"][0] == pytest.approx(int(s * 25 + 1e-6) / 25, abs=1e-3)


def test_truncated_data_bounds_the_plan(sv_media, sv_ctx, tmp_path):
    """A file whose header promises 4 s but whose data stops early: clips come only from the data there is."""
    from tests.short_video.sv_helpers import cfr_times, write_video

    (tmp_path / "PlayingGuitar").mkdir()
    full = write_video(tmp_path / "PlayingGuitar" / "v.mp4", cfr_times(4.0))  # faststart: index first, tail cut
    data = full.read_bytes()
    full.write_bytes(data[: int(len(data) * 0.6)])
    items = reader("class_folders", tmp_path, root=str(tmp_path)).list_items()
    clips = run("cut", _probe_plan(items, sv_ctx, policy="multi", max_clips=4), sv_ctx)
    probe = clips[0].meta["probe"]
    assert probe["truncated"] and probe["usable_duration"] < 3.5 and probe["duration"] == pytest.approx(4.0)
    assert all(c.alive and c.meta["source"]["span"][1] <= probe["usable_duration"] + 1e-6 for c in clips)


def test_label_captions_without_label_or_with_template(sv_ctx):
    from vidrd_data.items import Item

    items = [Item(key="a", source="s", input_id="a", meta={"label": "HorseRiding"}),
             Item(key="b", source="s", input_id="b", meta={"label": None})]
    out = run("caption_label", items, sv_ctx, template="people {label} outdoors", templates={"X": "y"})
    assert [i.meta["captions"]["label"] for i in out] == ["people horse riding outdoors", None]
    with pytest.raises(ValueError, match="label"):
        get_stage("caption_label").check({"template": "no placeholder"}, sv_ctx)


def test_missing_model_fails_before_work(sv_ctx, tmp_path):
    from vidrd_data.models.blip2 import ModelNotFound

    cls = get_stage("caption_blip2")
    ctx = StageContext(clip=sv_ctx.clip, models={"blip2": {"path": "Salesforce/blip2-opt-2.7b"}})
    with pytest.raises(ModelNotFound) as err:
        cls.check({"model": "blip2"}, ctx)
    msg = str(err.value)
    assert "Salesforce/blip2-opt-2.7b" in msg and "Hugging Face cache" in msg and "models.blip2.path" in msg
    ctx = StageContext(clip=sv_ctx.clip, models={"blip2": {"path": str(tmp_path / "nope")}})
    with pytest.raises(ModelNotFound, match="no directory"):
        cls.check({}, ctx)


def test_hub_id_resolves_from_the_local_cache(tiny_blip2, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from vidrd_data.models.blip2 import resolve_blip2

    repo = tmp_path / "hub" / "models--tiny-org--tiny-blip2"
    snap = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_blip2, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_blip2("tiny-org/tiny-blip2") == snap


def test_blip2_and_label_captions(class_root, sv_ctx, tiny_blip2):
    ctx = StageContext(clip=sv_ctx.clip, models={"blip2": {"path": str(tiny_blip2), "batch_size": 4}})
    items = reader("class_folders", class_root, root=str(class_root)).list_items()
    clips = run("cut", _probe_plan(items, ctx), ctx, keyframes=[0.25, 0.75])
    cls = get_stage("caption_blip2")
    params = {"model": "blip2", "max_new_tokens": 10, "min_new_tokens": 5, "no_repeat_ngram_size": 1}
    cls.check(params, ctx)
    assert cls.resources(params, ctx).num_gpus == 0  # no Ray / no GPU here: CPU
    clips = make_stage("caption_blip2", params, ctx).process_batch(clips)  # all clips, one batched call
    clips = run("caption_label", clips, ctx)
    clips = run("caption_select", clips, ctx, priority=["blip2", "label"])
    assert len(clips) == 4
    for c in clips:
        caps = c.meta["captions"]
        assert isinstance(caps["blip2"], str) and caps["blip2"]
        assert len(c.meta["blip2"]["frames"]) == 2
        assert caps["label"] == {"PlayingGuitar": "a person playing guitar",
                                 "ApplyEyeMakeup": "a person applying eye makeup"}[c.meta["label"]]
        assert c.data["caption"] in (caps["blip2"], caps["label"])
