"""Model actors on a cluster with fewer GPUs than GPU model pools: they share the GPUs instead of waiting.

Seen for real before cluster.fit_gpus: the demo manifest on a cluster with one GPU hung for good once its second
source asked for a BLIP-2 actor (1 GPU) beside the CLIP actor (1 GPU) shared from the first source. The node's GPU
is declared to Ray only (`ray start --num-gpus=1`); the actors find no CUDA device and run their models on the
CPU, so what is tested is Ray's scheduling of the plan's shares, the part that hung.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.distributed.conftest import FAST_FAILURE_DETECTION
from tests.distributed.test_cluster_build import _demo_manifest, tar_keys
from vidrd_testing.cluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_two_sources_with_gpu_pools_finish_on_one_gpu(demo_data, tmp_path):
    path = _demo_manifest(REPO, demo_data, tmp_path / "out", tmp_path / "m.yaml")
    doc = yaml.safe_load(path.read_text())
    doc["sources"] = [s for s in doc["sources"] if s["kind"] in ("image_text", "short_video")]
    for s in doc["sources"]:
        s["limit"] = 4 if s["kind"] == "image_text" else 2
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    c = LocalCluster.start(head_cpus=1, worker_cpus=[], env=FAST_FAILURE_DETECTION)
    try:
        c.add_node(2, num_gpus=1)
        r = subprocess.run([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(path),
                            "--ray-address", c.address, "-q"], cwd=REPO, env=c.env, capture_output=True,
                           text=True, timeout=240)
    finally:
        c.stop()
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert "1 GPU" in r.stdout and "model actors 0.5 GPU each" in r.stdout, r.stdout
    assert "caption_blip2  [actor pool x1, 1 CPU, 0.5 GPU each" in r.stdout, r.stdout
    assert tar_keys(tmp_path / "out")  # shards of both sources committed
