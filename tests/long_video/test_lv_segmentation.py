"""Long videos: shot detection + similarity rules find the real scene changes; clips hold what their spans say."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.long_video.lv_helpers import expected_codes, read_codes, run_stages, write_coded_video
from vidrd_testing.demo_videos_long import BIKES_CUTS, MEGAMIND_CUTS, assemble, mixed_parts, offline_videos
from vidrd_data.items import Item, make_key
from vidrd_data.segmentation import (SegmentRules, Shot, boundaries, match_boundaries, segment_shots,
                                     shots_from_cuts)
from vidrd_data.sources.long_video import ListParams, LongVideoListReader
from vidrd_data.stages.base import StageContext

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

# colour histograms: Megamind's shot/reverse-shot cuts (same restaurant) score 0.957-0.977 across the cut,
# bikes' street-scene cuts at most 0.93 and the joins between different videos far lower
HIST_RULES = {"merge_min_sim": 0.945, "internal_min_sim": 0.7, "static_min_sim": 1.01, "redundant_min_sim": 1.01,
              "min_segment_s": 1.0, "trim_s": 0.2}
CTX = StageContext(clip={"fps": 8, "size": [128, 128], "frames": 8})


def _video_item(path: Path, source: str = "lv") -> Item:
    return Item(key=make_key(source, path.name), source=source, input_id=path.name, data={"path": str(path)},
                meta={"source": {"kind": "video", "source_id": path.name, "dataset": source}})


# ----------------------------------------------------------------------------------------- pure rules

def _emb(*vecs):
    e = np.asarray(vecs, np.float32)
    return e / np.linalg.norm(e, axis=-1, keepdims=True)


A, B, C = [1, 0, 0], [0, 1, 0], [0, 0, 1]


def test_rules_drop_transition_merge_same_scene_and_record_the_deciding_sims():
    shots = [Shot(0, 0, 4, "start"), Shot(1, 4, 8), Shot(2, 8, 12), Shot(3, 12, 16), Shot(4, 16, 20)]
    emb = np.stack([_emb(A, A), _emb([1, 0.1, 0], A), _emb(B, C), _emb(C, C), _emb([0, 0.2, 1], C)])
    rules = SegmentRules(internal_min_sim=0.5, merge_min_sim=0.9, static_min_sim=1.01, redundant_min_sim=1.01)
    segs = segment_shots(shots, emb, rules)
    assert [s.shot_ids for s in segs] == [[0, 1], [2], [3, 4]]
    assert [s.status for s in segs] == ["keep", "internal_transition", "keep"]
    assert segs[0].sims["merged_boundaries"] == [pytest.approx(0.995, abs=1e-3)]
    assert "0.000 < internal_min_sim 0.5" in segs[1].reason
    # merged for the caption, but the clip window lies in one shot (the first of equally long ones), trimmed
    assert (segs[0].clip_start, segs[0].clip_end, segs[0].clip_shot) == (0.25, 3.75, 0)
    assert boundaries(segs) == [8, 12]


def test_rules_short_static_redundant_cap_and_forced_cuts():
    shots = shots_from_cuts(40.0, [1.0, 10.0], max_shot_s=20.0)  # 10..40 is split by a forced cut at 25
    assert [(s.start, s.end, s.cut) for s in shots] == [(0, 1, "start"), (1, 10, "hard"), (10, 25, "hard"),
                                                        (25, 40, "forced")]
    emb = np.stack([_emb(A, A), _emb(B, [0, 1, 0.3]), _emb(C, [0.3, 0, 1]), _emb([0.3, 0, 1], [0.3, 0, 1])])
    segs = segment_shots(shots, emb, SegmentRules(min_segment_s=2, static_min_sim=0.999, redundant_min_sim=0.9,
                                                  merge_min_sim=0.9, max_segment_s=8))
    assert [s.status for s in segs] == ["too_short", "keep", "keep", "static"]  # forced cut: never merged
    assert segs[1].clip_end - segs[1].clip_start == 8 and segs[1].sims["capped_from_s"] == 8.5
    segs = segment_shots(shots, emb, SegmentRules(static_min_sim=1.01, redundant_min_sim=0.9))
    assert segs[3].status == "redundant" and segs[3].sims["redundant_max"]["with_segment"] == 2


def test_rules_reject_bad_embeddings_and_thresholds():
    with pytest.raises(ValueError, match="k>=2"):
        segment_shots([Shot(0, 0, 1)], np.zeros((1, 1, 3)), SegmentRules())
    with pytest.raises(ValueError, match="max_segment_s"):
        SegmentRules(min_segment_s=10, max_segment_s=5)


# ----------------------------------------------------------------------- real footage, known boundaries

@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    videos = offline_videos()
    parts = mixed_parts(videos)
    path = tmp_path_factory.mktemp("lv") / "mix.mp4"
    starts = assemble(parts, path)
    mm = starts[1]  # Megamind begins after bikes and vtest
    scene_cuts = [c for c in BIKES_CUTS if c < parts[0].end] + starts
    camera_cuts = [mm + c for c in MEGAMIND_CUTS]
    return path, scene_cuts, camera_cuts


@pytest.mark.parametrize("detect", [{"detector": "content"}, {"detector": "adaptive"},
                                    {"detector": "content", "frame_skip": 1, "threshold": 30}],
                         ids=["content", "adaptive", "content-fast"])
def test_boundaries_match_known_scene_changes(mix, detect):
    path, scene_cuts, camera_cuts = mix
    steps = [("shot_detect", detect), ("embed_shots", {"model": "color_histogram"})]
    [video] = run_stages([_video_item(path)], steps, CTX)
    detected = video.meta["segmentation"]["video"]["cuts"]
    # the detector sees every cut, camera cuts included ...
    assert match_boundaries(detected, scene_cuts + camera_cuts) >= (0.9, 0.9), detected

    segs = run_stages([video], [("segment_shots", HIST_RULES)], CTX)
    found = sorted({s.meta["segmentation"]["segment"]["raw_span"][0] for s in segs} - {0.0})
    precision, recall = match_boundaries(found, scene_cuts)
    assert precision >= 0.9 and recall >= 0.9, (found, scene_cuts)
    # ... and the similarity rule merges the camera cuts inside Megamind's restaurant scene
    assert not any(abs(f - c) < 0.5 for f in found for c in camera_cuts)
    merged = [s for s in segs if len(s.meta["source"]["shot_ids"]) == 4]
    assert len(merged) == 1
    sims = merged[0].meta["segmentation"]["segment"]["sims"]["merged_boundaries"]
    assert all(s >= HIST_RULES["merge_min_sim"] for s in sims)
    assert merged[0].meta["segmentation"]["rules"]["merge_min_sim"] == HIST_RULES["merge_min_sim"]


def test_a_stricter_merge_threshold_keeps_the_camera_cuts(mix):
    path, scene_cuts, camera_cuts = mix
    steps = [("shot_detect", {}), ("embed_shots", {"model": "color_histogram"}),
             ("segment_shots", HIST_RULES | {"merge_min_sim": 0.99})]
    segs = run_stages([_video_item(path)], steps, CTX)
    found = sorted({s.meta["segmentation"]["segment"]["raw_span"][0] for s in segs} - {0.0})
    assert match_boundaries(found, scene_cuts + camera_cuts) >= (0.9, 0.9)


# ------------------------------------------------------------------- true spans on awkward files

VFR_TIMES = [i / 30 for i in range(90)] + [3 + i / 5 for i in range(15)] + [6 + i / 15 for i in range(45)]


def _coded_video(path: Path, times: list[float]) -> None:
    write_coded_video(path, times, [(40, 60, 90) if t < 4.5 else (170, 60, 40) for t in times])


def _cut_clips(path: Path, ctx: StageContext, proxy_mb: float) -> list[Item]:
    steps = [("shot_detect", {"proxy_max_mb": proxy_mb}), ("embed_shots", {"model": "color_histogram"}),
             ("segment_shots", HIST_RULES), ("cut_segments", {"keyframes": 2})]
    return run_stages([_video_item(path)], steps, ctx)


@pytest.mark.parametrize("proxy_mb", [512, 0], ids=["decode-once", "re-decode-span"])
@pytest.mark.parametrize("clip", [{"fps": 8, "size": [96, 96], "frames": 12},
                                  {"fps": 10, "size": [96, 96], "frames": None, "min_seconds": 1.0,
                                   "max_seconds": 30.0}], ids=["frames", "seconds"])
def test_variable_frame_rate_clips_show_what_their_span_says(tmp_path, proxy_mb, clip):
    path = tmp_path / "vfr.mp4"
    _coded_video(path, VFR_TIMES)  # 30 fps, then 5 fps, then 15 fps; the scene changes at 4.5 s
    clips = [c for c in _cut_clips(path, StageContext(clip=clip), proxy_mb) if c.alive]
    assert len(clips) == 2
    for c in clips:
        start, end = c.meta["source"]["span"]
        n = len(c.data["frames"])
        assert end - start == pytest.approx(n / clip["fps"])
        assert read_codes(c.data["frames"]) == expected_codes(VFR_TIMES, start, n, clip["fps"])
        assert (start >= 4.5) == (c.data["frames"][0, -1, -1, 0] > 128)  # never across the scene change
        assert c.data["keyframes"].shape == (2, 96, 96, 3)
    assert clips[1].meta["source"]["span"][1] <= VFR_TIMES[-1] + 1 / 15 + 1e-6


@pytest.mark.parametrize("proxy_mb", [512, 0], ids=["decode-once", "re-decode-span"])
def test_a_header_that_overpromises_gives_true_spans(tmp_path, proxy_mb):
    path = tmp_path / "truncated.mp4"
    times = [i / 25 for i in range(250)]  # 10 s claimed by the header ...
    _coded_video(path, times)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])  # ... but the data stops about 6 s in
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=nb_frames,duration",
                                       "-of", "json", str(path)], capture_output=True, check=True).stdout)
    assert int(probe["streams"][0]["nb_frames"]) == 250
    clip = {"fps": 10, "size": [96, 96], "frames": None, "min_seconds": 1.0, "max_seconds": 30.0}
    items = _cut_clips(path, StageContext(clip=clip), proxy_mb)
    real_end = items[0].meta["segmentation"]["video"]["duration"]
    assert 4.0 < real_end < 8.0
    clips = [c for c in items if c.alive]
    assert clips and max(c.meta["source"]["span"][1] for c in clips) <= real_end
    for c in clips:
        start, _ = c.meta["source"]["span"]
        assert read_codes(c.data["frames"]) == expected_codes(times, start, len(c.data["frames"]), 10)


def test_list_reader_orders_resolves_and_fails_missing_files(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.mp4").write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# comment\nsub/b.mp4\n\na.mp4  # inline\nnope.mp4\na.mp4\n")
    reader = LongVideoListReader("lv", ListParams(format="list", path="list.txt"), tmp_path)
    items = reader.list_items()
    assert [i.input_id for i in items] == ["sub/b.mp4", "a.mp4", "nope.mp4"]
    assert items[0].data["path"] == str(tmp_path / "sub" / "b.mp4")
    assert items[2].status == "failed" and "line 5" in items[2].reason and "nope.mp4" in items[2].reason
    assert items[0].key != items[1].key and "." not in items[0].key
