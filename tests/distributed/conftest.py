"""A loopback Ray cluster (head + 1 worker, real `ray start` processes) shared by this folder's tests.

Builds run as `vidrd-data build --ray-address` subprocesses: the session's in-process Ray (ray_session)
stays untouched, and the cluster's private temp dir keeps other `ray.init()` calls from joining it.
"""

from __future__ import annotations

import pytest

from vidrd_testing.cluster import LocalCluster

# Node death is noticed after period x threshold: 0.5 s x 3 here instead of Ray's 3 s x 5 (a test budget choice).
FAST_FAILURE_DETECTION = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
                          "RAY_health_check_initial_delay_ms": "1000",
                          # The session's embedded Ray sets this to "0" (loopback-only, single node) in os.environ;
                          # the loopback cluster's nodes must not inherit that.
                          "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}


@pytest.fixture(scope="module")
def cluster():
    # 2 logical CPUs per node (4 on this 2-core machine): room for a task beside a model actor on every node
    # (fractional actor shares once hung the demo on 1-CPU nodes: see cluster.actor_starvation).
    c = LocalCluster.start(head_cpus=2, worker_cpus=[2], env=FAST_FAILURE_DETECTION)
    try:
        yield c
    finally:
        c.stop()
