"""What stands between the command and the first shard: the first partition's chunk tasks all start at once
(none after the models are up, each of which would start a fresh worker process), and the second source's
models start loading only once the build's first shard is out (their imports would compete with it)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from vidrd_data.build import chunk_items

from .helpers import image_source, photo, write_folder_dataset, write_manifest


@pytest.mark.parametrize("cpus,ipt", list(itertools.product([1, 2, 3, 8, 64], [1, 4, 32])))
def test_the_first_partition_fits_its_window_and_later_ones_keep_four_chunks_per_cpu(cpus, ipt):
    first_window = cpus + 1
    for size in range(1, 400):
        first = chunk_items(size, ipt, cpus, first_window, warm=False)
        warm = chunk_items(size, ipt, cpus, 2, warm=True)
        assert 1 <= first <= ipt and 1 <= warm <= ipt
        if math.ceil(size / first_window) <= ipt:  # not capped by the recipe's items per task
            assert math.ceil(size / first) <= first_window, (size, first)
            assert math.ceil(size / first) >= min(size, first_window) / 2  # and still spread over the CPUs
        if math.ceil(size / (4 * cpus)) <= ipt:
            assert math.ceil(size / warm) >= min(size, 4 * cpus) / 2, (size, warm)  # ceil: 5 inputs -> 3 of 2


def test_demo_sized_first_partition_runs_in_as_many_chunks_as_its_window():
    # the demo: 8 photos per partition, 32 per task at most, 2 CPUs -> 3 chunks (was 8 chunks of one)
    assert math.ceil(8 / chunk_items(8, 32, 2, 3, warm=False)) == 3
    assert chunk_items(8, 32, 2, 2, warm=True) == 1


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from vidrd_testing.demo_videos_long import prepare_tiny_clip

    return prepare_tiny_clip(tmp_path_factory.mktemp("first_shard_models"))


def test_the_next_sources_models_load_after_this_sources_first_shard(tmp_path, ray_session, tiny_clip, monkeypatch):
    from vidrd_data import build as build_mod
    from vidrd_data.build import build

    out = tmp_path / "out"
    srcs = []
    for name, frames in (("a", 2), ("b", 3)):  # clip_align with other settings: a pool of its own per source
        write_folder_dataset(tmp_path / name, 6)
        if name == "b":  # other pictures (the same ones would be filtered as duplicates of a's)
            for i in range(6):
                photo(100 + i).save(tmp_path / name / f"img{i:03d}.jpg", quality=92)
        srcs.append(image_source(name, tmp_path / name, overrides={"clip_align": {"frames": frames}}))
    manifest = write_manifest(tmp_path / "m.yaml", out, srcs, max_samples=3)
    manifest.write_text(manifest.read_text() + "models:\n  clip: " + repr(dict(tiny_clip)).replace("'", '"') + "\n")

    calls: list[tuple[int, bool, list[str]]] = []
    launch = build_mod.PoolSet.launch

    def recording(self, source_no, ahead=False):
        calls.append((source_no, ahead, sorted(p.name for p in (out / "shards").glob("*_stats.json"))))
        return launch(self, source_no, ahead)

    monkeypatch.setattr(build_mod.PoolSet, "launch", recording)
    report = build(manifest, progress=False, out=lambda s: None)
    assert report.counts["success"] == 12 and len(report.shards) == 4, (report.counts, report.failures)
    ahead = [c for c in calls if c[1]]
    assert ahead and ahead[0][0] == 1, calls
    assert any(Path(s).name.startswith("a-") for s in ahead[0][2]), calls  # a shard of source a was out
    assert not any(Path(s).name.startswith("b-") for s in ahead[0][2])


@pytest.mark.parametrize("cpus,in_flight", [(1, 2), (2, 2), (3, 2), (8, 8), (64, 8)])
def test_chunk_windows_keep_spares_only_for_chunks_that_wait(cpus, in_flight):
    from vidrd_data.build import chunk_window

    # chunks that wait on a model (or on tasks they start) give their CPU back: spare chunks fill it
    assert chunk_window(cpus, in_flight, warm=False, waits=True) == cpus + 1
    assert chunk_window(cpus, in_flight, warm=True, waits=True) * in_flight >= cpus + 2
    # model-free chunks never wait long: exactly one per CPU first (no lone chunk last), then the CPUs shared
    first = chunk_window(cpus, in_flight, warm=False, waits=False)
    assert first == cpus
    warm = chunk_window(cpus, in_flight, warm=True, waits=False)
    assert warm >= 1 and (warm - 1) * in_flight < cpus <= warm * in_flight
    # the first partition of N inputs then splits into chunks that fill every CPU evenly
    for size in (cpus, 96, 1000):
        per_chunk = chunk_items(size, 10**6, cpus, first, warm=False)
        assert per_chunk == math.ceil(size / cpus) and math.ceil(size / per_chunk) <= cpus, (size, per_chunk)


def test_which_sources_wait():
    from vidrd_data.stages.base import get_stage

    assert get_stage("shot_detect").waits_on_tasks  # a long video's time ranges scan as sibling tasks
    assert not any(get_stage(n).waits_on_tasks for n in ("load_image", "pseudo_motion", "encode", "dedup", "cut"))


def test_sources_whose_inputs_fan_out_keep_their_spare_chunks(tmp_path, demo_data):
    """A short video's clips split over sibling tasks that its chunk waits for, model or none: its spares stay; a
    photo gives one clip, and without a model its chunks never wait."""
    from vidrd_data.build import make_context, plan_sources
    from vidrd_data.manifest import load_manifest

    write_folder_dataset(tmp_path / "photos", 2)
    manifest = write_manifest(tmp_path / "m.yaml", tmp_path / "out", [
        image_source("photos", tmp_path / "photos"),
        {"name": "actions", "kind": "short_video", "recipe": "short_video",
         "input": {"format": "class_folders", "root": str(demo_data / "ucf_like")}}])
    resolved = load_manifest(manifest)
    plans = plan_sources(resolved, make_context(resolved))
    assert [p.fans_out for p in plans] == [False, True]
