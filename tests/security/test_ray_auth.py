"""Embedded Ray of a build: token auth with a fresh token, listeners on loopback only (issue 16, point 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psutil
import pytest

from vidrd_common.ray_session import embedded_env, user_configured_auth

# A build's embedded Ray, started the way `vidrd-data build` starts it, in a process of its own.
SERVER = textwrap.dedent("""
    import os, sys
    import ray
    from vidrd_common.ray_session import init_ray
    init_ray(None, num_cpus=1, object_store_mb=80)
    print(ray._private.worker._global_node.gcs_address, os.environ["RAY_AUTH_TOKEN"], flush=True)
    sys.stdin.read()
""")

# Another process on the machine trying the GCS (the door a joining driver uses) with the token it has.
CLIENT = textwrap.dedent("""
    import sys
    from ray._raylet import GcsClient
    try:
        keys = GcsClient(address=sys.argv[1]).internal_kv_keys(b"", namespace=None, timeout=10)
        print("JOINED", len(keys))
    except Exception as exc:
        print("REFUSED", type(exc).__name__, str(exc)[:200])
""")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the client itself must not rewrite 127.0.0.1 to the node IP
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def embedded_build():
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env, text=True)
    try:
        address, token = proc.stdout.readline().split()
        yield proc, address, token
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def _try_join(address: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-c", CLIENT, address], env=_clean_env(**env), capture_output=True,
                         text=True, timeout=120)
    return out.stdout.strip()


def test_client_without_token_is_refused(embedded_build):
    _, address, token = embedded_build
    assert address.startswith("127.0.0.1:")
    assert _try_join(address).startswith("REFUSED AuthenticationError")  # no token at all
    assert _try_join(address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64).startswith("REFUSED AuthenticationError")
    # control: the same client with the build's token gets in, so the refusals above are the token's doing
    assert _try_join(address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token).startswith("JOINED")


def test_embedded_listeners_are_loopback_only(embedded_build):
    proc, _, _ = embedded_build
    root = psutil.Process(proc.pid)
    pids = {root.pid} | {p.pid for p in root.children(recursive=True)}
    listening = [(psutil.Process(c.pid).name(), c.laddr) for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids]
    names = {name for name, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening  # the check sees the cluster's own listeners
    exposed = [(n, a) for n, a in listening if a.ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert not exposed, f"embedded Ray listens beyond loopback: {exposed}"


def test_fresh_token_per_build_unless_user_configured():
    a, b = embedded_env({}), embedded_env({})
    assert a["RAY_AUTH_MODE"] == "token" and len(a["RAY_AUTH_TOKEN"]) == 64
    assert a["RAY_AUTH_TOKEN"] != b["RAY_AUTH_TOKEN"]
    for user in ({"RAY_AUTH_MODE": "token"}, {"RAY_AUTH_TOKEN_PATH": "/x"}, {"RAY_AUTH_MODE": "disabled"}):
        assert user_configured_auth(user)
        assert "RAY_AUTH_TOKEN" not in embedded_env(user) and "RAY_AUTH_MODE" not in embedded_env(user)


def test_embedded_workers_get_malloc_settings_unless_the_user_chose():
    from vidrd_common.ray_session import HUGEPAGE_ENV, MALLOC_ENV, user_configured_malloc

    assert {k: embedded_env({})[k] for k in {**MALLOC_ENV, **HUGEPAGE_ENV}} == {**MALLOC_ENV, **HUGEPAGE_ENV}
    for user in ({"MALLOC_TRIM_THRESHOLD_": "0"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4096"}):
        assert user_configured_malloc(user) and not set(MALLOC_ENV) & set(embedded_env(user))
        assert embedded_env(user)["NUMPY_MADVISE_HUGEPAGE"] == "0"  # the other knob is still ours
    assert not user_configured_malloc({"MALLOC_ARENA_MAX": "2"})  # another knob: ours still apply
    assert "NUMPY_MADVISE_HUGEPAGE" not in embedded_env({"NUMPY_MADVISE_HUGEPAGE": "1"})


def test_an_embedded_worker_reuses_freed_clip_buffers_without_new_page_faults(ray_session):
    """The point of the settings: a 50 MB frame array freed and allocated again costs no page faults (by default
    glibc maps it afresh each time and the kernel faults in every page again)."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the settings are glibc's")
    import ray

    @ray.remote(num_cpus=0)
    def faults_on_second_allocation() -> tuple[tuple[str | None, str | None], int]:
        import os
        import resource

        import numpy as np

        def clip() -> None:
            a = np.empty((256, 256, 256, 3), np.uint8)  # 256 frames at 256x256: 50 MB
            a[:] = 1

        clip()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        clip()
        return ((os.environ.get("MALLOC_MMAP_THRESHOLD_"), os.environ.get("NUMPY_MADVISE_HUGEPAGE")),
                resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

    setting, faults = ray.get(faults_on_second_allocation.remote())
    assert None not in setting
    assert faults < 100, faults  # 50 MB is ~12,000 4-KiB pages (or ~25 huge pages and their set-up) when mapped afresh
