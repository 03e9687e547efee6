"""Where the plan says a step runs: CPU steps anywhere with CPU, GPU steps only on nodes with GPUs."""

from __future__ import annotations

from vidrd_data.cluster import actor_starvation, placement

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


def test_fractional_actors_on_one_cpu_nodes_are_flagged():
    """Seen for real: the demo's long-video source (two 0.5-CPU actor pools) hung on a head(1) + worker(1)."""
    from vidrd_data.runtime import StepPlan
    from vidrd_data.stages.base import Resources

    steps = [StepPlan([("shot_detect", {})], False, Resources(1.0), 1),
             StepPlan([("embed_shots", {})], True, Resources(0.5), 8),
             StepPlan([("caption", {})], True, Resources(0.5), 4)]
    small = [{"id": f"n{i}", "ip": "127.0.0.1", "cpu": 1.0, "gpu": 0.0} for i in range(2)]
    big = [{"id": f"n{i}", "ip": "127.0.0.1", "cpu": 2.0, "gpu": 0.0} for i in range(2)]
    assert "wait forever" in actor_starvation(steps, small)
    assert actor_starvation(steps, big) is None
    assert actor_starvation(steps[:1], small) is None  # no actors, nothing held
