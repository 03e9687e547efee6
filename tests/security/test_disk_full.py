"""Operator errors (issue 16, point 7): a full disk ends `vidrd-data build` with one line naming the path and the
cause and exit code 4; committed shards stay valid and the rerun completes.

The real case mounts a small tmpfs as the output (needs root; skipped without it, and said so). The CLI's
unwrapping of a worker's OSError is also checked without root, with the error a Ray writer task would raise."""

from __future__ import annotations

import os
import subprocess
import tarfile
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.data_build.helpers import image_source, tar_keys, write_folder_dataset, write_manifest
from vidrd_data.operator_errors import EXIT_OS_ERROR

REPO = Path(__file__).resolve().parents[2]


def _build(manifest: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(manifest), "-q"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _committed_tars_valid(out: Path) -> int:
    """Every shard with its commit marker has a complete, readable tar; returns how many there are."""
    stats = sorted((out / "shards").glob("*_stats.json"))
    for s in stats:
        tar = s.with_name(s.name[: -len("_stats.json")] + ".tar")
        assert tar.is_file(), f"{s.name} commits a tar that is not there"
    return len(stats)


def _committed_keys(out: Path) -> list[str]:
    """Sample keys of committed shards only: a tar renamed into place before the disk filled, but never given its
    parquet and commit marker, is a leftover that the rerun rebuilds."""
    keys = []
    for s in sorted((out / "shards").glob("*_stats.json")):
        with tarfile.open(s.with_name(s.name[: -len("_stats.json")] + ".tar")) as tf:
            keys += sorted({m.name.partition(".")[0] for m in tf})
    return keys


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_ends_the_build_with_one_line_and_the_rerun_completes(tmp_path, small_tmpfs, ray_session):
    root = tmp_path / "imgs"
    ids = write_folder_dataset(root, 12, size=(96, 72))
    out = small_tmpfs / "out"
    manifest = write_manifest(tmp_path / "m.yaml", out, [image_source("p", root)], frames=8, size=(64, 64),
                              max_samples=2)
    full = _build(manifest)
    lines = [ln for ln in full.stderr.splitlines() if ln.strip()]
    assert full.returncode == EXIT_OS_ERROR, full.stderr[-3000:]
    assert "Traceback" not in full.stderr, full.stderr[-3000:]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and "No space left on device [ENOSPC]" in errors[0] and str(out) in errors[0], lines[-5:]
    print(errors[0])
    committed = _committed_tars_valid(out)
    keys_before = _committed_keys(out)
    assert committed < 6  # the disk really filled before the end

    subprocess.run(["mount", "-o", "remount,size=32m", str(small_tmpfs)], check=True)
    from vidrd_data.build import build  # the rerun in this process's Ray: one Ray start less

    report = build(manifest, progress=False, out=lambda line: None)
    assert report.counts["success"] == len(ids) - len(keys_before)
    assert _committed_tars_valid(out) == 6
    keys = tar_keys(out)
    assert len(keys) == len(ids) and not [k for k, n in Counter(keys).items() if n > 1]
    assert set(keys_before) <= set(keys)


def test_a_workers_os_error_is_reported_in_one_line_with_exit_4(tmp_path, monkeypatch, capsys):
    """Without root: the error a writer task gives the driver (Ray's RayTaskError around the worker's OSError)."""
    from ray.exceptions import RayTaskError

    import vidrd_data.build
    import vidrd_common.ray_session
    from vidrd_data import cli

    tar = tmp_path / "out" / "shards" / "p-000003.tar.tmp"
    worker_error = OSError(28, "No space left on device", str(tar))
    wrapped = RayTaskError("write_partition", "Traceback (most recent call last): ...", worker_error).as_instanceof_cause()

    def full_disk(*args, **kwargs):
        raise wrapped

    monkeypatch.setattr(vidrd_data.build, "build", full_disk)
    monkeypatch.setattr(vidrd_common.ray_session, "shutdown_ray", lambda: None)  # the session's Ray stays up
    manifest = write_manifest(tmp_path / "m.yaml", tmp_path / "out", [image_source("p", tmp_path)])
    assert cli.main(["build", "--manifest", str(manifest)]) == EXIT_OS_ERROR
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(f"error: {tar}: No space left on device [ENOSPC]"), err
