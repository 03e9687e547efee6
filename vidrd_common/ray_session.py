"""Starting or joining Ray for a build: the embedded cluster's listeners and its authentication.

Contract (docs/security.md):
- Embedded Ray (no address) requires a token (Ray's `RAY_AUTH_MODE=token`): a fresh random one per build,
  unless the user configured Ray auth themselves (`RAY_AUTH_MODE`, `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH`);
  an explicit `RAY_AUTH_MODE=disabled` is honoured with a warning.
- Embedded Ray's GCS, raylet, object manager and workers listen on 127.0.0.1 only; no dashboard.
- Joining a cluster changes nothing in the environment: the cluster's own auth settings apply.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

log = logging.getLogger("vidrd")

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
# Ray's switch for "single-machine only": node IP 127.0.0.1, so every listener binds loopback (read at import).
LOOPBACK_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

# Environment values this module replaced for the current embedded session: restored by `shutdown_ray`
# (or the next `init_ray`), so a later join in the same process sees the user's own settings.
_saved_env: dict[str, str | None] = {}


def user_configured_auth(env: dict[str, str] | os._Environ) -> bool:
    return any(env.get(name) for name in AUTH_VARS)


# glibc malloc in the embedded Ray's workers (read at process start; other C libraries ignore them): blocks up to
# 256 MiB (a clip's frames: 50 MB for 10 s at 256x256, 25 fps) come from the heap, and up to 1 GiB of freed heap is
# kept for the next clip instead of being handed back to the kernel and faulted in afresh, page by page. By
# default each such array is a fresh mmap: cut_segments of a 1-minute source took 2.3-2.5 s vs 1.1-1.2 s.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(256 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}
# numpy asks for transparent huge pages on arrays >= 4 MiB; the first touch of fresh memory then waits on the
# kernel assembling 2-MiB pages: 0.03-1.5 s vs a steady 0.14 s per 300 MB of frames here; the first 3-minute
# long-video build in a fresh process, median of 7: 13.2 vs 16.1 s (benchmarks/bench_fresh_build.py).
HUGEPAGE_ENV = {"NUMPY_MADVISE_HUGEPAGE": "0"}


def user_configured_malloc(env: dict[str, str] | os._Environ) -> bool:
    """The user set these knobs themselves (either spelling glibc reads): theirs apply, not ours."""
    tunables = env.get("GLIBC_TUNABLES", "")
    return any(name in env for name in MALLOC_ENV) or any(k in tunables for k in ("mmap_threshold", "trim_threshold"))


def worker_memory_env(env: dict[str, str] | os._Environ) -> dict[str, str]:
    """MALLOC_ENV and HUGEPAGE_ENV, less what the user set themselves."""
    out = {} if user_configured_malloc(env) else dict(MALLOC_ENV)
    out.update({k: v for k, v in HUGEPAGE_ENV.items() if k not in env})
    return out


def embedded_env(env: dict[str, str] | os._Environ) -> dict[str, str]:
    """The variables an embedded build sets: loopback-only listeners, a fresh token unless the user chose, and
    the workers' memory settings (worker_memory_env) unless the user chose their own."""
    out = {LOOPBACK_VAR: "0"}
    if not user_configured_auth(env):
        out["RAY_AUTH_MODE"] = "token"
        out["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # 256 bits, never written to disk
    out.update(worker_memory_env(env))
    return out


def init_ray(address: str | None, num_cpus: int | None = None, object_store_mb: int | None = 512,
             log_to_driver: bool = False) -> dict[str, Any]:
    """Embedded Ray (address None: loopback, token auth, quiet, no dashboard, object store capped unless
    object_store_mb is None) or join a cluster. The builder and the trainer both start Ray here."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name in ("ray", "ray.data", "ray._private", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if ray.is_initialized():
        return ray.cluster_resources()
    _restore_env()
    # `ray job submit` and users set RAY_ADDRESS to mean "this cluster"; otherwise null means embedded.
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=log_to_driver, logging_level=logging.WARNING)
        return ray.cluster_resources()
    if (os.environ.get("RAY_AUTH_MODE") or "").lower() == "disabled":
        log.warning("RAY_AUTH_MODE=disabled: the embedded Ray accepts any local process without a token "
                    "(unset it to get a fresh random token per build)")
    _set_env(embedded_env(os.environ))
    _refresh_ray_process_config()
    # address="local": ray.init() with no address would silently join a `ray start` cluster on this machine.
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver,
             logging_level=logging.WARNING, object_store_memory=object_store_mb * 2**20 if object_store_mb else None,
             # Chunk tasks that wait on an actor (dedup's index, a model pool) hand their CPU back and Ray starts
             # the next task in a new worker; reaping those extra idle workers quickly keeps memory flat. Two idle
             # workers above the CPU count stay (partition writers and a task waiting on its siblings hold workers
             # without a CPU): a worker started again costs ~2 s of CPU in imports; measured 5.0-5.5 s vs 3.9-4.6 s
             # per 96-input pseudo-video build on 2 CPUs (bench_pseudo_video.py's manifest, Ray warm).
             _system_config={"metrics_report_interval_ms": 60_000, "idle_worker_killing_time_threshold_ms": 200,
                             "kill_idle_workers_interval_ms": 100,
                             "num_workers_soft_limit": int(num_cpus or os.cpu_count() or 1) + 2})
    node_ip = ray._private.worker._global_node.node_ip_address
    if node_ip != "127.0.0.1":
        log.warning("embedded Ray runs on %s, not loopback: this Ray ignored %s=0", node_ip, LOOPBACK_VAR)
    return ray.cluster_resources()


def shutdown_ray() -> None:
    """Stop this process's Ray (if any) and give back the environment the embedded session replaced."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _restore_env()


def _set_env(values: dict[str, str]) -> None:
    for name, value in values.items():
        _saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value


def _restore_env() -> None:
    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_env.clear()
    _refresh_ray_process_config()


def _refresh_ray_process_config() -> None:
    """This process caches what it read at import (loopback switch) and at first use (auth mode, token)."""
    import ray._private.ray_constants as ray_constants
    from ray._private.authentication.authentication_token_setup import AuthenticationTokenLoader
    from ray._raylet import Config

    ray_constants.ENABLE_RAY_CLUSTER = ray_constants.env_bool(LOOPBACK_VAR, not ray_constants.IS_WINDOWS_OR_OSX)
    Config.initialize("")  # re-reads RAY_AUTH_MODE, as Ray's own token set-up does
    AuthenticationTokenLoader.instance().reset_cache()
