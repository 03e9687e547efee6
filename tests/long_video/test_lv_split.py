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


def _makespan(bounds: list[int], costs: list[float], cpus: int) -> float:
    """Runs started in order, the first on CPU 0, each next one on the CPU that is free first (Ray's queue)."""
    free = [0.0] * cpus
    for x, y in zip(bounds, bounds[1:]):
        k = free.index(min(free))
        free[k] += sum(costs[x:y])
    return max(free)


@pytest.mark.parametrize("cpus", [2, 3, 4, 7])
def test_split_runs_are_contiguous_nonempty_and_largest_first(cpus):
    import random

    from vidrd_data.runtime import guided_bounds

    rng = random.Random(cpus)
    for trial in range(300):
        n = rng.randint(cpus, 80)
        weights = [rng.choice([0.2, 1.0, 2.4, 12.0]) * rng.uniform(0.5, 1.5) for _ in range(n)]
        b = guided_bounds(weights, cpus)
        assert b[0] == 0 and b[-1] == n and len(b) >= 3  # split: at least two runs
        assert all(x < y for x, y in zip(b, b[1:])), b  # every run holds at least one item, in order
        total, big = sum(weights), max(weights)
        assert abs(sum(weights[:b[1]]) - total / cpus) <= big  # the first: 1/cpus of the whole, within one item
        # Per-item cost varies with the content (here +-30 % around the weight): whatever the draw, the CPUs
        # finish within one small run of each other, since the runs that start last are the small ones.
        costs = [x * rng.uniform(0.7, 1.3) for x in weights]
        floor = total / (8 * cpus)
        assert _makespan(b, costs, cpus) <= sum(costs) / cpus + 1.3 * (floor + big) + 1e-9, (weights, b)


def _even_runs(weights: list[float], cpus: int) -> list[int]:
    """The reference: one run per CPU of about equal weight (what the split made before the guided runs)."""
    import bisect
    import itertools

    cum = list(itertools.accumulate(weights))
    cuts = [min(bisect.bisect_left(cum, cum[-1] * k / cpus) + 1, len(weights) - cpus + k) for k in range(1, cpus)]
    return [0] + sorted(set(cuts)) + [len(weights)]


@pytest.mark.parametrize("cpus", [2, 4])
def test_guided_runs_finish_sooner_than_one_run_per_cpu(cpus):
    import random
    import statistics

    from vidrd_data.runtime import guided_bounds

    rng = random.Random(1)
    guided, even = [], []
    for trial in range(400):
        n = rng.randint(20, 80)
        weights = [rng.uniform(0.2, 12.0) for _ in range(n)]
        costs = [x * rng.uniform(0.7, 1.3) for x in weights]  # what a second of output costs varies
        bound = sum(costs) / cpus
        guided.append(_makespan(guided_bounds(weights, cpus), costs, cpus) / bound)
        even.append(_makespan(_even_runs(weights, cpus), costs, cpus) / bound)
    assert statistics.mean(guided) < statistics.mean(even) - 0.01, (statistics.mean(guided), statistics.mean(even))


def test_split_runs_follow_span_seconds_and_stay_few():
    from vidrd_data.runtime import guided_bounds

    shots = [12.0, 1.2, 1.8, 2.4, 2.0, 0.2, 4.0, 12.3, 5.2, 3.9] + [1.0] * 10  # long shots first
    b = guided_bounds(shots, 2)
    assert abs(sum(shots[:b[1]]) - sum(shots) / 2) <= 12.3  # half the seconds, within one shot
    assert b[1] < 10  # by count (10 of 20) the first run would get 45 of the 55 s
    assert guided_bounds([None, 2.0, 1.0, 1.0], 2)[1] == 2  # an item without a span: equal weights
    assert guided_bounds([1.0] * 46, 2) == [0, 23, 35, 41, 44, 46]  # halves, then ever smaller runs
    assert len(guided_bounds([1.0] * 10_000, 2)) - 1 <= 2 * 8  # never finer than 1/(8 cpus) of the whole
    assert guided_bounds([1.0] * 3, 8) == [0, 1, 2, 3]  # more CPUs than items: one item each


class _FakeRef:
    """A sibling task's result: `future()` as Ray's ObjectRef gives it."""

    def __init__(self, fut):
        self._fut = fut

    def future(self):
        return self._fut


def test_run_handout_gives_every_run_once_in_order_never_more_siblings_than_slots():
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from vidrd_data.runtime import RunHandout

    cost = [0.03, 0.01, 0.002, 0.02, 0.001, 0.001, 0.004, 0.001, 0.001]  # seconds per run
    busy, peak, lock, ran = [0], [0], threading.Lock(), []

    def sibling(i):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(cost[i])
        with lock:
            busy[0] -= 1
            ran.append(("sibling", i))
        return f"sibling {i}"

    with ThreadPoolExecutor(8) as pool:  # room for more siblings than the handout may start
        def here(i):
            time.sleep(cost[i])
            ran.append(("here", i))
            return [f"here {i}"]

        out = RunHandout(len(cost), 2, lambda i: _FakeRef(pool.submit(sibling, i))).run(here)
    assert sorted(i for _, i in ran) == list(range(len(cost)))  # each run once
    assert ("here", 0) in ran  # the first run stays in the calling task
    assert peak[0] <= 2  # at most `slots` siblings at a time
    for i, r in enumerate(out):  # in run order: items of a run here, a ref for a sibling's
        assert r == [f"here {i}"] or (isinstance(r, _FakeRef) and r.future().result() == f"sibling {i}")
    assert sum(isinstance(r, _FakeRef) for r in out) >= 3  # the siblings took runs as they came free


def test_run_handout_raises_what_a_submission_raised():
    from vidrd_data.runtime import RunHandout

    def submit(i):
        raise RuntimeError(f"cannot submit run {i}")

    done = []
    with pytest.raises(RuntimeError, match="cannot submit run 1"):
        RunHandout(4, 1, submit).run(lambda i: done.append(i) or [i])
    assert done == [0]  # the first run ran here; none after the failure: the chunk fails as a whole
