"""Intra-video parallelism: after a fan-out (a long video into its segments) the rest of the recipe runs in
sibling tasks; the result is the same items, in the same order, with the same pixels as in one task."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from tests.long_video.lv_helpers import write_coded_video
from vidrd_data.items import Item, make_key
from vidrd_data.runtime import StepPlan, pack, run_stages, unpack
from vidrd_data.stages.base import Resources, StageContext

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

CTX = StageContext(clip={"fps": 8, "size": [64, 64], "frames": 8})
RULES = {"merge_min_sim": 1.01, "internal_min_sim": -1.0, "static_min_sim": 1.01, "redundant_min_sim": 1.01,
         "min_segment_s": 1.0, "trim_s": 0.1}


def _cpu(*stages) -> StepPlan:
    return StepPlan(stages=list(stages), uses_model=False, resources=Resources(), batch_size=0)


def test_split_after_fan_out_gives_the_same_items_in_the_same_order(tmp_path, ray_session):
    ray = ray_session
    colours = [(20, 20, 20), (230, 230, 230)] * 2 + [(20, 20, 20)]  # hard cuts the content detector sees
    times = [i / 25 for i in range(25 * 2 * len(colours))]  # five 2-s scenes with hard cuts
    path = tmp_path / "five_scenes.mp4"
    write_coded_video(path, times, [colours[int(t // 2)] for t in times])
    item = Item(key=make_key("lv", path.name), source="lv", input_id=path.name, data={"path": str(path)},
                meta={"source": {"kind": "video", "source_id": path.name, "dataset": "lv"}})
    steps = [_cpu(("shot_detect", {}), ("embed_shots", {"model": "color_histogram"})),
             _cpu(("segment_shots", RULES), ("cut_segments", {})),
             _cpu(("encode", {"preset": "ultrafast"}))]
    task = ray.remote(run_stages)

    def run(split: bool):
        out = unpack(ray.get(task.remote(pack([item]), steps, CTX, {}, 0, "t", split)))
        return [(it.key, it.status, hashlib.sha256(it.data.get("mp4", b"")).hexdigest(), it.weight) for it in out], out

    alone, _ = run(False)
    split, items = run(True)
    assert len([r for r in alone if r[1] == "ok"]) == 5  # one clip per scene: the fan-out happened
    assert split == alone  # same keys, statuses, bytes and weights, in the same order
    assert sum(r[3] for r in split) == 1
    spans = [it.meta["source"]["span"][0] for it in items]
    assert spans == sorted(spans)  # the video's order


@pytest.mark.parametrize("parts", [2, 3, 4, 7])
def test_split_parts_are_contiguous_nonempty_and_balanced_by_span_seconds(parts):
    import random

    from vidrd_data.runtime import balanced_bounds

    rng = random.Random(parts)
    for trial in range(300):
        n = rng.randint(parts, 60)
        weights = [rng.choice([0.2, 1.0, 2.4, 12.0]) * rng.uniform(0.5, 1.5) for _ in range(n)]
        b = balanced_bounds(weights, parts)
        assert b[0] == 0 and b[-1] == n and len(b) == parts + 1
        assert all(x < y for x, y in zip(b, b[1:])), b  # every part holds at least one item, in order
        loads = [sum(weights[x:y]) for x, y in zip(b, b[1:])]
        if n >= 2 * parts:  # room to move each cut: no part exceeds the even share by more than one item
            assert max(loads) <= sum(weights) / parts + max(weights) + 1e-9, (weights, b)


def test_whole_shots_split_by_seconds_not_by_count():
    from vidrd_data.runtime import balanced_bounds

    shots = [12.0, 1.2, 1.8, 2.4, 2.0, 0.2, 4.0, 12.3, 5.2, 3.9] + [1.0] * 10  # long shots first
    b = balanced_bounds(shots, 2)
    halves = sum(shots[:b[1]]), sum(shots[b[1]:])
    assert abs(halves[0] - halves[1]) <= 12.3  # within one shot of even
    assert b[1] < 10  # by count (10 of 20) the first part would get 45 of the 55 s
    assert balanced_bounds([None, 2.0, 1.0, 1.0], 2) == [0, 2, 4]  # an item without a span: equal weights
    assert balanced_bounds([1.0] * 5, 2) in ([0, 2, 5], [0, 3, 5])
