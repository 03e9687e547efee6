"""End to end through `vidrd-data build`: every long video ends as its segments in the shards plus one
status row per candidate segment (kept, filtered with its rule) or per failed input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.long_video.lv_helpers import run_stages
from tests.long_video.test_lv_segmentation import HIST_RULES, _video_item
from vidrd_data.build import build
from vidrd_testing.demo_videos_long import assemble, mixed_parts, offline_videos
from vidrd_data.media.encode import decode_mp4_bytes
from vidrd_data.sink import iter_samples, read_status
from vidrd_data.stages.base import StageContext

REPO = Path(__file__).resolve().parents[2]
CLIP = {"fps": 8, "size": [64, 64], "frames": 8}
GEN = {"max_new_tokens": 8, "min_new_tokens": 4, "no_repeat_ngram_size": 1}
OVERRIDES = {"embed_shots": {"model": "color_histogram"}, "segment_shots": HIST_RULES,
             "caption": {"model": "minigpt4", "minigpt4": GEN}}

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture(scope="module")
def long_build(tmp_path_factory, tiny_minigpt4, ray_session):
    root = tmp_path_factory.mktemp("lvbuild")
    videos = offline_videos()
    assemble(mixed_parts(videos, short=True), root / "mix.mp4")
    (root / "bikes.mp4").symlink_to(videos["bikes.mp4"])
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 50_000, np.uint8).tobytes())
    (root / "list.txt").write_text("mix.mp4\nbikes.mp4\nmissing.mp4\ncorrupt.mp4\n")
    doc = {"name": "lvtest", "output": str(root / "out"), "clip": CLIP, "shard": {"max_samples": 8},
           "models": {"minigpt4": {"path": str(tiny_minigpt4), "batch_size": 4}},
           "sources": [{"name": "longform", "kind": "long_video", "recipe": str(REPO / "pipelines/long_video.yaml"),
                        "input": {"format": "list", "path": str(root / "list.txt"), "allow_outside_root": True},
                        "overrides": OVERRIDES}]}
    (root / "m.yaml").write_text(yaml.safe_dump(doc))
    report = build(root / "m.yaml", progress=False, out=lambda s: None)
    return root, report


def test_every_candidate_segment_has_a_row_and_kept_ones_are_samples(long_build):
    root, report = long_build
    status = read_status(str(root / "out"))
    samples = {s["key"]: s for s in iter_samples(str(root / "out"))}
    ctx = StageContext(clip=CLIP)
    for name in ("mix.mp4", "bikes.mp4"):
        # the same stages in this process say which candidates the video has
        segs = run_stages([_video_item(root / name, "longform")],
                          [("shot_detect", {}), ("embed_shots", OVERRIDES["embed_shots"]),
                           ("segment_shots", HIST_RULES)], ctx)
        rows = status[status.input_id == name]
        assert sorted(rows.key) == sorted(s.key for s in segs), name
        assert set(rows.status) <= {"success", "filtered"} and (rows.status == "success").any()
        for _, row in rows.iterrows():
            meta = json.loads(row.metadata) if isinstance(row.metadata, str) else {}
            if row.status == "filtered":
                assert row.reason and row.stage in ("segment_shots", "cut_segments", "caption_select", "dedup"), row.reason
            else:
                assert row.key in samples
    kept = [s for s in samples.values() if json.loads(s["json"])["source"]["source_id"] == "mix.mp4"]
    assert len(kept) >= 3
    failed = status[status.status == "failed"].set_index("input_id")
    assert "video file not found" in failed.loc["missing.mp4", "reason"]
    assert failed.loc["corrupt.mp4", "stage"] == "shot_detect"
    assert len(status) == len(samples) + (status.status != "success").sum()


def test_samples_carry_span_shots_similarities_and_a_minigpt4_caption(long_build):
    root, _ = long_build
    for s in iter_samples(str(root / "out")):
        meta = json.loads(s["json"])
        frames, fps = decode_mp4_bytes(s["mp4"])
        assert frames.shape == (CLIP["frames"], 64, 64, 3) and fps == pytest.approx(8)
        start, end = meta["source"]["span"]
        assert end - start == pytest.approx(CLIP["frames"] / CLIP["fps"])
        assert meta["source"]["kind"] == "video" and meta["source"]["shot_ids"]
        assert meta["captions"]["minigpt4"] and meta["caption_source"] == "minigpt4"
        assert s["txt"].decode().strip()
        details = json.loads(meta["details"])
        seg = details["segmentation"]
        assert seg["rules"]["merge_min_sim"] == HIST_RULES["merge_min_sim"]
        # the clip lies inside one shot: no detected cut or transition within its span
        assert not any(start < c < end for c in seg["video"]["cuts"]), (start, end, seg["video"]["cuts"])
        assert not any(a < end and start < b for a, b in seg["video"]["transitions"])
        assert seg["segment"]["clip_shot"] in meta["source"]["shot_ids"]
        # the source picture, as the short-video json gives it
        assert details["probe"]["width"] > 0 and details["probe"]["height"] > 0 and details["probe"]["fps"] > 0
        assert seg["segment"]["status"] == "keep" and "internal" in seg["segment"]["sims"]
        assert meta["scores"]["clip_start_end_sim"] is not None
