"""A writing worker SIGKILLed mid-tar (issue 11): no partial shard survives, and the rerun yields exactly the keys
of an undisturbed build."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.data_build.helpers import image_source, status_rows, tar_keys, write_folder_dataset, write_manifest
from vidrd_data.build import build
from vidrd_testing.cluster import tree

REPO = Path(__file__).resolve().parents[2]


def _writer_with_open_tar(pid: int, shards: Path) -> psutil.Process | None:
    """A Ray worker running `write_partition` that has a shard's temporary tar open right now."""
    for p in tree(pid):
        try:
            if "write_partition" not in " ".join(p.cmdline()[:1]):
                continue
            if any(f.path.startswith(str(shards)) and ".tar." in f.path and f.path.endswith(".tmp")
                   for f in p.open_files()):
                return p
        except psutil.Error:
            continue
    return None


def test_writer_killed_mid_tar_leaves_no_partial_shard(tmp_path, ray_session):
    root = tmp_path / "imgs"
    write_folder_dataset(root, 24, size=(320, 240))
    sources = [image_source("p", root)]
    kw = dict(frames=16, size=(192, 192), max_samples=4)
    killed_m = write_manifest(tmp_path / "killed.yaml", tmp_path / "out_killed", sources, **kw)
    clean_m = write_manifest(tmp_path / "clean.yaml", tmp_path / "out_clean", sources, **kw)

    # No retries: the killed writer's partition is recorded (failed, "lost") instead of silently redone.
    env = {**os.environ, "VIDRD_TASK_RETRIES": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(killed_m), "-q"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shards = tmp_path / "out_killed" / "shards"
    victim, deadline = None, time.time() + 150
    while victim is None and proc.poll() is None and time.time() < deadline:
        victim = _writer_with_open_tar(proc.pid, shards)
        time.sleep(0.02)
    assert victim is not None, "never saw a writer with its tar open"
    victim.kill()  # SIGKILL mid-tar: no cleanup, no rename
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert not list(shards.glob("*.tmp")), "a partial tar survived"
    assert sorted(p.name[:-4] for p in shards.glob("*.tar")) == sorted(p.name[:-11] for p in shards.glob("*_stats.json"))
    keys_after_kill = tar_keys(tmp_path / "out_killed")  # every tar complete: 4 members per key, readable
    rows = status_rows(tmp_path / "out_killed")
    lost = rows[rows["status"] == "failed"]
    assert len(rows) == 24 and rows["input_id"].is_unique
    assert 1 <= len(lost) <= 4 and lost["reason"].str.contains("writer task failed").all(), lost

    resumed = build(killed_m, retry_failed=True, progress=False, out=lambda s: None)
    assert resumed.inputs == len(lost)
    build(clean_m, progress=False, out=lambda s: None)
    keys = tar_keys(tmp_path / "out_killed")
    assert sorted(keys) == sorted(tar_keys(tmp_path / "out_clean")) and len(keys) == len(set(keys)) == 24
    assert set(keys_after_kill) <= set(keys)
    rows = status_rows(tmp_path / "out_killed")
    assert rows["input_id"].is_unique and (rows["status"] == "success").all() and len(rows) == 24
