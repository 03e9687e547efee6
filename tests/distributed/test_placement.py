"""Where the plan says a step runs: CPU steps anywhere with CPU, GPU steps only on nodes with GPUs."""

from __future__ import annotations

from vidrd_data.cluster import placement

NODES = [{"id": "aaaa1111", "ip": "10.0.0.1", "cpu": 16.0, "gpu": 0.0},
         {"id": "bbbb2222", "ip": "10.0.0.2", "cpu": 8.0, "gpu": 2.0},
         {"id": "cccc3333", "ip": "10.0.0.3", "cpu": 8.0, "gpu": 0.5}]


def test_cpu_steps_run_everywhere():
    assert placement(1, 0, NODES) == ("on any of 3 node(s)", True)
    assert placement(12, 0, NODES) == ("on 1 of 3 node(s) (needs 12 CPU)", True)


def test_gpu_steps_only_on_gpu_nodes():
    where, fits = placement(1, 1, NODES)
    assert fits and where.startswith("on GPU nodes: 1 of 3") and "10.0.0.2/bbbb2222" in where
    where, fits = placement(1, 0.5, NODES)
    assert fits and "2 of 3" in where


def test_a_gpu_step_on_a_cpu_only_cluster_is_reported():
    where, fits = placement(1, 1, NODES[:1])
    assert not fits and "waits for a GPU node" in where
