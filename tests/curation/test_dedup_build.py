"""Dedup through `vidrd_data.build` on Ray: a photo re-encoded smaller, a video re-encoded at another bitrate,
a clip present in two sources, and a second build deduplicated against the first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import have_ffmpeg
from tests.data_build.helpers import tar_keys
from tests.curation.cur_helpers import jpeg, moving_frames, reencode, scene, write_mp4

REPO = Path(__file__).resolve().parents[2]

# short videos without a captioner: the class label is the caption (the dedup stages are the recipe's own)
VIDEO_RECIPE = """
kind: short_video
max_outputs_per_input: 1
stages:
  - {stage: probe, params: {}}
  - {stage: plan_clips, params: {policy: center}}
  - {stage: cut, params: {}}
  - {stage: caption_label, params: {}}
  - {stage: caption_select, params: {priority: [label]}}
  - {stage: motion, params: {}}
  - {stage: dedup, params: {max_distance: 5}}
  - {stage: encode, params: {preset: ultrafast, crf: 23}}
"""


def _inputs(d: Path) -> dict[str, Path]:
    photos = d / "photos"
    photos.mkdir()
    orig = scene(11, (256, 192))
    orig.save(photos / "a_orig.png")
    jpeg(orig.resize((160, 120)), 30).save(photos / "b_copy.jpg", quality=30)  # lower quality + resized
    scene(12, (256, 192)).save(photos / "c_other.png")
    for stem, text in (("a_orig", "a scene"), ("b_copy", "the same scene, smaller"), ("c_other", "another")):
        (photos / f"{stem}.txt").write_text(text)
    vids = d / "videos_a" / "Panning"
    vids.mkdir(parents=True)
    v = write_mp4(vids / "v1.mp4", moving_frames(21, 48), crf=16)
    reencode(v, vids / "v2_lowbitrate.mp4", "150k")
    write_mp4(vids / "w.mp4", moving_frames(22, 48), crf=16)
    other = d / "videos_b" / "Panning"
    other.mkdir(parents=True)
    shutil.copy(v, other / "same_clip.mp4")  # the same clip in a second source
    (d / "video.yaml").write_text(VIDEO_RECIPE)
    return {"photos": photos, "videos_a": d / "videos_a", "videos_b": d / "videos_b", "recipe": d / "video.yaml"}


def _manifest(d: Path, out: Path, inp: dict, sources: list[str], against: list[str] | None = None,
              models: dict | None = None) -> Path:
    srcs = {
        "photos": {"name": "photos", "kind": "image_text", "recipe": str(REPO / "pipelines/image_text.yaml"),
                   "input": {"format": "folder", "root": str(inp["photos"])}},
        "va": {"name": "va", "kind": "short_video", "recipe": str(inp["recipe"]),
               "input": {"format": "class_folders", "root": str(inp["videos_a"])}},
        "vb": {"name": "vb", "kind": "short_video", "recipe": str(inp["recipe"]),
               "input": {"format": "class_folders", "root": str(inp["videos_b"])}},
    }
    chosen = [dict(srcs[s]) for s in sources]
    if against:
        for s in chosen:
            s["overrides"] = {"dedup": {"against": against}}
    doc = {"name": "dd", "output": str(out), "clip": {"fps": 8, "size": [64, 64], "frames": 8},
           "shard": {"max_samples": 8}, "sources": chosen, "models": models or {}}
    path = d / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _rows(out: Path):
    from vidrd_data.sink import read_status

    rows = read_status(str(out))
    rows["name"] = rows["input_id"].map(lambda p: Path(p).stem)
    return rows.set_index(["source", "name"])


@pytest.fixture(scope="module")
def dd(tmp_path_factory, ray_session):
    if not have_ffmpeg():
        pytest.skip("ffmpeg is needed to re-encode the test video")
    from vidrd_data.build import build

    import torch

    from vidrd_data.curation.aesthetic import build_mlp
    from vidrd_testing.demo_videos_long import prepare_tiny_clip

    d = tmp_path_factory.mktemp("dedup_build")
    inp = _inputs(d)
    # with models.clip and models.aesthetic set, the image recipe's clip_align and aesthetic stages switch on
    torch.manual_seed(0)
    torch.save(build_mlp([32, 16, 8, 4, 2, 1]).state_dict(), d / "aesthetic.pth")
    models = {"clip": prepare_tiny_clip(d), "aesthetic": {"path": str(d / "aesthetic.pth")}}
    (d / "models.json").write_text(json.dumps(models))
    out1 = d / "out1"
    build(_manifest(d, out1, inp, ["photos", "va", "vb"], models=models), progress=False, out=lambda s: None)
    return d, inp, out1


def test_copies_are_filtered_as_duplicate_of_the_first(dd):
    _, _, out = dd
    rows = _rows(out)
    key = rows["key"].to_dict()
    status = rows["status"].to_dict()
    reason = rows["reason"].to_dict()
    # "first" is the first in build order (sources as listed, partitions by index, inputs in listing order),
    # whichever task gets there first: here each photo is its own chunk task and they run in parallel
    assert status[("photos", "a_orig")] == "success" and status[("photos", "c_other")] == "success"
    assert status[("photos", "b_copy")] == "filtered"
    assert reason[("photos", "b_copy")].startswith(f"duplicate_of={key[('photos', 'a_orig')]} (near")
    # v1, its bitrate re-encode and its copy in source vb: v1 is kept, the other two are its duplicates
    assert status[("va", "w")] == "success" and status[("va", "v1")] == "success"
    assert status[("va", "v2_lowbitrate")] == status[("vb", "same_clip")] == "filtered"
    assert reason[("va", "v2_lowbitrate")].startswith(f"duplicate_of={key[('va', 'v1')]} (near, ")
    assert reason[("vb", "same_clip")] == f"duplicate_of={key[('va', 'v1')]} (exact)"  # the same decoded pixels
    for dup in (("photos", "b_copy"), ("va", "v2_lowbitrate"), ("vb", "same_clip")):  # nothing of theirs in a tar
        assert key[dup] not in tar_keys(out)
    # the fingerprint and the scores are in the status rows (re-filter without rebuilding)
    meta = json.loads(rows.loc[("va", "w"), "metadata"])
    assert meta["scores"]["motion_mean"] > 0.05 and meta["scores"]["clip_text_sim"] is None
    dedup = json.loads(meta["details"])["dedup"]
    assert len(dedup["exact"]) == 64 and len(dedup["phash"]) == 3 and dedup["duplicate_of"] is None


def test_a_later_build_is_deduplicated_against_the_earlier_one(dd):
    from vidrd_data.build import build

    d, inp, out1 = dd
    out2 = d / "out2"
    build(_manifest(d, out2, inp, ["vb"], against=[str(out1)]), progress=False, out=lambda s: None)
    rows1 = _rows(out1)
    kept1 = rows1[(rows1["status"] == "success") & rows1.index.isin([("va", "v1"), ("va", "v2_lowbitrate"), ("vb", "same_clip")])]
    row = _rows(out2).loc[("vb", "same_clip")]
    assert row["status"] == "filtered" and row["reason"].startswith(f"duplicate_of={kept1['key'].iloc[0]} (")
    assert row["reason"].endswith(", earlier build)")


def test_scores_of_the_model_stages_land_in_key_json_and_status_rows(dd):
    from vidrd_data.sink import iter_samples

    _, _, out = dd
    photos = [json.loads(s["json"]) for s in iter_samples(str(out)) if s["key"].startswith("photos_")]
    assert len(photos) == 2
    for j in photos:  # every fixed key present; the photo recipe's signals filled in
        assert all(isinstance(j["scores"][k], float) for k in ("clip_text_sim", "aesthetic", "motion_mean", "motion_max"))
        assert -1.0 <= j["scores"]["clip_text_sim"] <= 1.0 and j["scores"]["motion_mean"] > 0
    rows = _rows(out)
    copy = json.loads(rows.loc[("photos", "b_copy"), "metadata"])  # a filtered row keeps its scores too
    assert isinstance(copy["scores"]["aesthetic"], float)


def test_the_same_build_again_in_the_same_ray_job_gives_the_same_rows(dd):
    """Build order decides, never timing or an earlier build's leftover index: a second build of the same
    manifest into a new output (same process, same Ray job) gives the same outcome for every input."""
    from vidrd_data.build import build

    d, inp, out1 = dd
    again = d / "again"
    models = json.loads((d / "models.json").read_text())
    build(_manifest(d, again, inp, ["photos", "va", "vb"], models=models), progress=False, out=lambda s: None)
    cols = ["key", "status", "stage", "reason"]
    assert _rows(again)[cols].sort_index().equals(_rows(out1)[cols].sort_index())
    assert sorted(tar_keys(again)) == sorted(tar_keys(out1))


def test_an_unreadable_earlier_build_stops_the_build_before_any_shard(dd):
    """The index actor starts (and seeds from `against`) while the first partition runs; its error still ends
    the build up front, named, with nothing committed."""
    import shutil

    from vidrd_data.build import BuildError, build
    from vidrd_data.sink import committed_shards

    d, inp, out1 = dd
    broken = d / "broken_earlier"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(out1, broken)
    for parquet in broken.rglob("*.parquet"):
        parquet.write_bytes(b"not a parquet file")
    out3 = d / "out3"
    with pytest.raises(BuildError, match=r"dedup index could not start: .*(parquet|Parquet|magic)"):
        build(_manifest(d, out3, inp, ["vb"], against=[str(broken)]), progress=False, out=lambda s: None)
    assert not committed_shards(str(out3))
