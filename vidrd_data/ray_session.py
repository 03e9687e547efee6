"""Starting or joining Ray for a build: the embedded cluster's listeners and its authentication."""

from __future__ import annotations

import logging
import os
from typing import Any


def init_ray(address: str | None, num_cpus: int | None = None, object_store_mb: int = 512) -> dict[str, Any]:
    """Embedded Ray (address None: quiet, no dashboard, capped object store) or join a cluster."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name in ("ray", "ray.data", "ray._private", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if ray.is_initialized():
        return ray.cluster_resources()
    # `ray job submit` and users set RAY_ADDRESS to mean "this cluster"; otherwise null means embedded.
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        # A private, in-process cluster on loopback: token auth only adds a warning (and must match on both sides).
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        # address="local": ray.init() with no address would silently join a `ray start` cluster on this machine.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 object_store_memory=object_store_mb * 2**20,
                 _system_config={"metrics_report_interval_ms": 60_000})
    return ray.cluster_resources()
