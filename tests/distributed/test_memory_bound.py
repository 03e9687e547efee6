"""Bounded memory: a build over 10x more inputs peaks within 20% of the 1x build's memory.

Each build runs as its own `vidrd-data build` subprocess with embedded Ray, and we sample the summed RSS
of its whole process tree (driver + sink, GCS, raylet, agents, every worker) every 0.1 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.data_build.helpers import image_source, write_folder_dataset, write_manifest
from vidrd_testing.cluster import PeakRSS, ray_env

REPO = Path(__file__).resolve().parents[2]
BASE = 24


def _peak_build(tmp_path: Path, root: Path, name: str) -> tuple[int, dict, str]:
    m = write_manifest(tmp_path / f"{name}.yaml", tmp_path / name, [image_source("p", root)],
                       extra="ray: {num_cpus: 2, object_store_mb: 128}\n")
    proc = subprocess.Popen([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(m), "-q"],
                            cwd=REPO, env=ray_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRSS(lambda: [proc.pid], interval=0.05) as peak:
        out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, err[-3000:]
    return peak.peak, peak.peak_by_name, out


@pytest.mark.timeout(300)
def test_ten_times_the_inputs_within_20_percent_of_the_memory(tmp_path):
    root = tmp_path / "imgs"
    write_folder_dataset(root, BASE, size=(96, 80))
    small, _, out1 = _peak_build(tmp_path, root, "x1")
    write_folder_dataset(root, 10 * BASE, size=(96, 80))  # the same kind of inputs, 10x as many
    large, by_name, out10 = _peak_build(tmp_path, root, "x10")
    assert f"{BASE} success" in out1 and f"{10 * BASE} success" in out10
    top = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])[:6])
    print(f"\npeak RSS: 1x {small / 2**20:.0f} MiB, 10x {large / 2**20:.0f} MiB ({large / small:.2f}x); 10x by process: {top}")
    assert large <= 1.2 * small, f"10x inputs peaked at {large / small:.2f}x the memory of 1x ({top})"
