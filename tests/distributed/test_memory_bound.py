"""Bounded memory: a build over 10x more inputs needs no more memory than the 1x build.

Each build runs as its own `vidrd-data build` subprocess with embedded Ray, and we sample the summed RSS
of its whole process tree (driver, GCS, raylet, agents, every worker) every 0.05 s. The memory of a build is
(processes alive) x (memory per process); each factor is bounded on its own:
- the largest single process (driver, a writer, the dedup index, a stage worker) stays within 20 %: anything that
  accumulates per input (items on the driver, a writer holding its partition, an index) shows here;
- the most processes alive at once grows by at most 5 (8 runs: 1x 13-15, 10x 16-18, differences 1-4; a leak per
  input or per partition would add tens): writers in flight
  and chunk windows are fixed by the CPU count, not by the corpus (a task that waits on an actor hands its CPU
  back and Ray may start the next task in another worker; a finished writer may wait for its predecessor's dedup
  verdicts while the next partition's writer starts; idle workers are reaped after 0.2 s, so a longer build sees
  a few more transient peaks than one of 1-3 partitions);
- the whole tree's summed peak is printed and kept within 1.5x as a backstop (repeated 1x builds measured
  2172-2872 MiB: one summed peak moves by ~15 % either way with the number of workers alive at that instant).
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
    return peak.peak, peak.peak_by_name, out, (peak.largest, peak.max_procs)


@pytest.mark.timeout(300)
def test_ten_times_the_inputs_need_no_more_memory_per_process_nor_more_processes(tmp_path):
    root = tmp_path / "imgs"
    write_folder_dataset(root, BASE, size=(96, 80))
    small, _, out1, (small_proc, small_n) = _peak_build(tmp_path, root, "x1")
    write_folder_dataset(root, 10 * BASE, size=(96, 80))  # the same kind of inputs, 10x as many
    large, by_name, out10, (large_proc, large_n) = _peak_build(tmp_path, root, "x10")
    assert f"{BASE} success" in out1 and f"{10 * BASE} success" in out10
    top = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])[:6])
    print(f"\npeak RSS: 1x {small / 2**20:.0f} MiB, 10x {large / 2**20:.0f} MiB ({large / small:.2f}x); 10x by process: "
          f"{top}; largest process 1x {small_proc / 2**20:.0f} MiB, 10x {large_proc / 2**20:.0f} MiB; "
          f"processes at once 1x {small_n}, 10x {large_n}")
    assert large_proc <= 1.2 * small_proc, f"10x inputs: largest process {large_proc / small_proc:.2f}x that of 1x"
    assert large_n <= small_n + 5, f"10x inputs: {large_n} processes at once against {small_n} for 1x ({top})"
    assert large <= 1.5 * small, f"10x inputs peaked at {large / small:.2f}x the memory of 1x ({top})"
