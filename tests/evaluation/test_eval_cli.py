"""`vidrd-model eval` end to end: the UCF-101 protocol on a tiny model and tiny feature networks."""

import json
import math

import pytest

from vidrd_model.cli import main
from vidrd_model.evaluation.ucf101 import allocate_counts, generation_plan, load_prompts, training_split


def test_shipped_prompts_cover_101_classes_in_class_index_order():
    prompts = load_prompts()
    assert len(prompts) == 101
    names = list(prompts)
    assert names[0] == "ApplyEyeMakeup" and names[-1] == "YoYo" and names[35] == "HammerThrow"
    assert all(len(p.split()) >= 5 for p in prompts.values())


def test_counts_follow_training_split(fake_ucf101):
    split = training_split(fake_ucf101)
    assert split.source.startswith("file names") and split.class_counts() == {"Archery": 2, "Biking": 1}
    counts = allocate_counts(split.class_counts(), 10000)
    assert counts == {"Archery": 6667, "Biking": 3333} and sum(counts.values()) == 10000
    plan = generation_plan(allocate_counts({"Archery": 2, "Biking": 1}, 4), load_prompts(), base_seed=5)
    assert [(j.class_name, j.index, j.seed) for j in plan] == [
        ("Archery", 0, 5), ("Archery", 1, 6), ("Archery", 2, 7), ("Biking", 0, 8)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from vidrd_testing.tiny_vidrd import make_tiny_vidrd

    return make_tiny_vidrd(tmp_path_factory.mktemp("tiny") / "model")


def test_eval_ucf101_generates_and_measures(tiny_model, fake_ucf101, torchscript_files, tiny_clip, tmp_path):
    clip_name, clip_ckpt = tiny_clip
    out = tmp_path / "ucf_eval"
    nets = ["--i3d", str(torchscript_files / "i3d.pt"), "--c3d", str(torchscript_files / "c3d.pt"),
            "--clip-model", clip_name, "--clip-checkpoint", str(clip_ckpt), "--fvd-frames", "4",
            "--is-frames", "4", "--device", "cpu", "--no-progress", "--batch-size", "2"]
    rc = main(["eval", "ucf101", "--ucf-root", str(fake_ucf101), "--model", str(tiny_model), "--out-dir", str(out),
               "--num-videos", "3", "--num-clips", "1", "--num-frames", "4", "--overlap-frames", "2",
               "--steps", "2", "--height", "64", "--width", "64", *nets])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    assert all(math.isfinite(m[k]) for k in ("fvd", "is", "clipsim")) and m["is"] >= 1.0
    assert res["ucf101"]["counts_per_class"]["Archery"] == 2 and res["ucf101"]["counts_per_class"]["Biking"] == 1
    s = res["settings"]
    assert s["fvd"]["num_real_videos"] == 3 and s["fvd"]["num_generated_videos"] == 3
    assert s["fvd"]["preprocess"]["num_frames"] == 4 and s["fvd"]["preprocess"]["resize"] == [224, 224]
    assert s["is"]["preprocess"]["crop"] == [112, 112] and s["is"]["num_classes"] == 101
    assert s["clipsim"]["model"] == clip_name
    assert res["generation"]["sampler"]["num_clips"] == 1
    assert sorted(p.name for p in (out / "videos" / "Archery").iterdir()) == ["Archery_00000.mp4", "Archery_00001.mp4"]

    # the same videos through `eval videos`, real statistics from a folder; FVD must agree
    rc = main(["eval", "videos", "--videos", str(out / "videos"), "--real", str(fake_ucf101), "--metrics", "fvd",
               "is", "--output", str(tmp_path / "v.json"), *nets])
    assert rc == 0
    res_v = json.loads((tmp_path / "v.json").read_text())
    assert res_v["settings"]["fvd"]["num_real_videos"] == 4  # every video in the folder, test group included
    assert res_v["metrics"]["is"] == pytest.approx(m["is"], rel=1e-9)


def test_eval_missing_networks_explain(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    rc = main(["eval", "videos", "--videos", str(tmp_path / "v"), "--metrics", "is", "--device", "cpu"])
    assert rc == 2 and "no .mp4 videos" in capsys.readouterr().err
