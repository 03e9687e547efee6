"""A real kill of a running build, then a re-run: the same keys as an uninterrupted run, none lost or doubled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.data_build.helpers import image_source, status_rows, tar_keys, write_folder_dataset, write_manifest
from vidrd_data.build import build
from vidrd_testing.cluster import kill_tree

REPO = Path(__file__).resolve().parents[2]


def test_killed_build_resumes_to_identical_keys(tmp_path, ray_session):
    root = tmp_path / "imgs"
    write_folder_dataset(root, 48, size=(320, 240))
    sources = [image_source("p", root)]
    killed = write_manifest(tmp_path / "killed.yaml", tmp_path / "out_killed", sources, frames=16, size=(192, 192),
                            max_samples=4)
    clean = write_manifest(tmp_path / "clean.yaml", tmp_path / "out_clean", sources, frames=16, size=(192, 192),
                           max_samples=4)

    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(killed), "-q"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path / "out_killed" / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(shards.glob("*_stats.json"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed; make it longer"
    kill_tree(proc)
    committed_before = len(list(shards.glob("*_stats.json")))
    assert 2 <= committed_before < 12, committed_before

    resumed = build(killed, progress=False, out=lambda s: None)
    assert resumed.inputs < 48  # committed inputs were skipped, not redone
    build(clean, progress=False, out=lambda s: None)

    keys_killed, keys_clean = tar_keys(tmp_path / "out_killed"), tar_keys(tmp_path / "out_clean")
    assert not [k for k, n in Counter(keys_killed).items() if n > 1], "duplicated samples"
    assert sorted(keys_killed) == sorted(keys_clean) and len(keys_clean) == 48
    rows = status_rows(tmp_path / "out_killed")
    assert rows["input_id"].is_unique and len(rows) == 48
    assert not list(shards.glob("*.tmp"))
    assert len(list(shards.glob("*.tar"))) == len(list(shards.glob("*_stats.json")))
