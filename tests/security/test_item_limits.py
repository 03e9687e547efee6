"""Per-item caps on hostile inputs the tests make (issue 16, point 3): FIFOs and devices never opened, sparse
multi-GB files refused by stat, a timestamp-gap video that must not allocate by its claimed duration, and a
stage stuck in C that becomes a `timeout` row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from tests.security import hostile_media
from tests.security.hostile_media import SleepInC, StuckInC, make_gap_mkv
from vidrd_data.item_guard import NotRegularFile, open_regular
from vidrd_data.items import Item
from vidrd_data.media.probe import probe
from vidrd_data.runtime import apply_stage
from vidrd_data.stages.base import StageContext, make_stage

CTX = StageContext(clip={"fps": 8, "size": [64, 64], "frames": 8})


def _item(path, input_id="x") -> Item:
    data = {"path": str(path)} if path is not None else {}
    return Item(key=f"s_{uuid.uuid4().hex[:12]}", source="s", input_id=input_id, data=data)


def _run(stage_name: str, path, **params) -> Item:
    [out] = apply_stage(make_stage(stage_name, params, CTX), [_item(path)])
    return out


@pytest.mark.timeout(120)  # a FIFO that gets opened blocks forever: the timeout turns that into a failure
@pytest.mark.parametrize("stage", ["probe", "shot_detect", "load_image"])
def test_fifo_device_and_directory_get_not_a_regular_file_rows(tmp_path, stage):
    fifo = tmp_path / ("clip.mp4" if stage != "load_image" else "photo.jpg")
    os.mkfifo(fifo)
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    for path, what in ((fifo, "a FIFO"), ("/dev/zero", "a character device"), (folder, "a directory")):
        out = _run(stage, path)
        assert (out.status, out.stage) == ("failed", stage), (path, out.reason)
        assert out.reason.startswith("not_a_regular_file: ") and what in out.reason, out.reason


@pytest.mark.timeout(60)
def test_a_fifo_named_like_a_tar_or_video_never_blocks_a_reader(tmp_path):
    for name in ("shard-000000.tar", "clip.mkv"):
        fifo = tmp_path / name
        os.mkfifo(fifo)
        with pytest.raises(NotRegularFile, match="FIFO"):
            open_regular(fifo)
        with pytest.raises(NotRegularFile, match="FIFO"):
            probe(fifo)


def test_sparse_multi_gb_file_is_refused_by_stat_before_reading(tmp_path):
    big = tmp_path / "big.mp4"
    with open(big, "wb") as f:
        f.truncate(40 * 2**30)  # 40 GiB of nothing: sparse, costs no disk; over the 32 GiB default
    photo = tmp_path / "big.jpg"
    with open(photo, "wb") as f:
        f.truncate(3 * 2**30)
    t0 = time.perf_counter()
    rows = [_run("probe", big), _run("shot_detect", big), _run("load_image", photo)]
    took = time.perf_counter() - t0
    for out in rows:
        assert out.status == "filtered" and out.reason.startswith("too_large: file big."), out.reason
        assert "> max_file_bytes" in out.reason
    assert took < 5, f"three refusals took {took:.1f} s: something read the file"
    small_cap = _run("probe", big, max_file_bytes=2**20)
    assert small_cap.reason.endswith("> max_file_bytes 1048576")


# A build worker in miniature: the shot scan on one item, in a process of its own under an address-space limit,
# reporting its row and peak RSS before and after the call (the unguarded scan of a 10 h gap peaked at 1.19 GB
# with 1802 shots).
GAP_SCAN = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]) * 2**20,) * 2)
    from vidrd_data.items import Item
    from vidrd_data.runtime import apply_stage
    from vidrd_data.stages.base import StageContext, make_stage
    stage = make_stage("shot_detect", {}, StageContext(clip={"fps": 8, "size": [64, 64], "frames": 8}))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # libraries loaded, stage built
    [out] = apply_stage(stage, [Item(key="k", source="s", input_id="gap", data={"path": sys.argv[1]})])
    print(json.dumps({"status": out.status, "reason": out.reason, "base_mb": base,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


@pytest.mark.parametrize("gap_h, status, rule", [(3.5, "failed", "timestamps jump"), (100, "filtered", "too_long")])
def test_timestamp_gap_video_does_not_allocate_by_claimed_duration(tmp_path, gap_h, status, rule):
    path = make_gap_mkv(tmp_path / "gap.mkv", gap_s=gap_h * 3600)
    assert path.stat().st_size < 2048
    limit_mb = 3072  # address space: the libraries' own reservations fit, gigabytes of frames would not
    res = subprocess.run([sys.executable, "-c", GAP_SCAN, str(path), str(limit_mb)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    row = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"timestamp gap {gap_h} h: {row}")
    assert row["status"] == status and rule in row["reason"], row
    assert row["peak_mb"] - row["base_mb"] < 100, row  # what the item added (unguarded, 10 h: +1 GB)


def test_python_level_hang_in_c_sleep_becomes_a_timeout_row():
    stage = SleepInC({"item_timeout_s": 1.0}, CTX)
    items = [_item(None, "stuck"), _item(None, "fine")]
    t0 = time.perf_counter()
    out = apply_stage(stage, items)
    took = time.perf_counter() - t0
    by_id = {it.input_id: it for it in out}
    assert by_id["fine"].alive and by_id["fine"].data["done"]
    stuck = by_id["stuck"]
    assert (stuck.status, stuck.stage) == ("failed", "sleep_in_c") and stuck.reason.startswith("timeout: "), stuck.reason
    print(f"libc.sleep hang -> timeout row in {took:.1f} s (limit 1 s per item; batch of 2, then one by one)")
    assert took < 10


def test_stage_stuck_in_native_code_recycles_the_worker_and_the_retry_gives_a_timeout_row(ray_session):
    """Signals blocked + libc.sleep: only killing the worker ends it. The retried task must not hang again."""
    from ray import cloudpickle
    import ray

    cloudpickle.register_pickle_by_value(hostile_media)  # workers need not import the tests package

    @ray.remote(max_retries=3, num_cpus=1)
    def chunk(stage, items):
        return apply_stage(stage, items)

    stage = StuckInC({"item_timeout_s": 1.0}, CTX)
    items = [_item(None, "stuck"), _item(None, "fine")]
    t0 = time.perf_counter()
    out = ray.get(chunk.remote(stage, items), timeout=240)
    took = time.perf_counter() - t0
    by_id = {it.input_id: it for it in out}
    assert by_id["fine"].alive and by_id["fine"].data["done"]
    stuck = by_id["stuck"]
    assert (stuck.status, stuck.stage) == ("failed", "stuck_in_c"), stuck.reason
    assert stuck.reason.startswith("timeout: ") and "worker was stopped" in stuck.reason, stuck.reason
    print(f"native hang -> timeout row in {took:.1f} s (limit 1 s per item, 2 worker kills: batch, then the item)")


@pytest.mark.timeout(300)
def test_a_build_gives_fifo_inputs_a_row_and_never_blocks(tmp_path, ray_session):
    """A FIFO named like a photo, and a FIFO caption sidecar, in a folder source: one failed row each."""
    from tests.data_build.helpers import image_source, status_rows, write_folder_dataset, write_manifest
    from vidrd_data.build import build

    root = tmp_path / "imgs"
    write_folder_dataset(root, 3, size=(96, 72))
    os.mkfifo(root / "pipe.jpg")
    (root / "pipe.txt").write_text("a caption beside a FIFO\n")
    (root / "img001.txt").unlink()
    os.mkfifo(root / "img001.txt")
    manifest = write_manifest(tmp_path / "m.yaml", tmp_path / "out", [image_source("p", root)], frames=4)
    report = build(manifest, progress=False, out=lambda line: None)
    rows = {r["input_id"]: r for r in status_rows(tmp_path / "out").to_dict("records")}
    assert report.counts["success"] == 2, rows
    for input_id, name in (("pipe", "pipe.jpg"), ("img001", "img001.txt")):
        row = rows[input_id]
        assert row["status"] == "failed" and row["reason"].startswith(f"not_a_regular_file: {name} is a FIFO"), row


@pytest.mark.timeout(60)
def test_a_fifo_named_like_a_webdataset_tar_is_refused_not_a_hang(tmp_path):
    from vidrd_data.sources.tar_stream import tar_samples

    fifo = tmp_path / "shard-000000.tar"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match="not_a_regular_file: shard-000000.tar is a FIFO"):
        list(tar_samples(str(fifo)))  # the partition's task fails at once; its inputs get rows, nothing waits
