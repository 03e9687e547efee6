"""Test and benchmark support for clusters: a loopback multi-node cluster of real `ray start` processes
(tests, benchmarks, trying the cluster how-to on one machine), and RSS sampling of Ray's process trees.

A loopback cluster is `ray start --head --block` plus `ray start --address=... --block` per worker, each
in its own session, with a private `--temp-dir` so it never becomes the machine's "current" cluster
(`ray.init()` elsewhere would silently join it). Stopping kills exactly the process trees we started:
never `ray stop`, which kills every Ray on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# ------------------------------------------------------------------------------------------ process memory


def tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pids: list[int], by_pid: dict[int, int] | None = None) -> tuple[int, dict[str, int]]:
    """Sum of RSS over the process trees rooted at `pids` (bytes), and RSS per process name; `by_pid`, if given,
    keeps each process's largest RSS seen."""
    total, by_name, seen = 0, {}, set()
    for root in pids:
        for p in tree(root):
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                rss, name = p.memory_info().rss, _proc_name(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += rss
            by_name[name] = by_name.get(name, 0) + rss
            if by_pid is not None:
                by_pid[p.pid] = max(by_pid.get(p.pid, 0), rss)
    return total, by_name


def _proc_name(p: psutil.Process) -> str:
    cmd = p.cmdline()
    if cmd and cmd[0].startswith("ray::"):
        return cmd[0].split()[0]  # the worker's title: ray::IDLE, ray::MapBatches(run_cpu_stages), ...
    if cmd and "python" in Path(cmd[0]).name:
        args = cmd[1:]
        if "-m" in args[:-1]:
            return args[args.index("-m") + 1]  # python -m module
        script = next((a for a in args if not a.startswith("-")), None)
        return Path(script).name if script else p.name()
    return p.name()


class PeakRSS:
    """Samples the summed RSS of process trees in a thread; `.peak` (bytes) and `.peak_by_name` at exit, and
    `.largest`: the largest RSS any single process of the trees reached; `.max_procs`: most processes at once."""

    def __init__(self, pids_fn, interval: float = 0.1):
        self.pids_fn, self.interval = pids_fn, interval
        self.peak, self.peak_by_name, self.samples = 0, {}, 0
        self.by_pid: dict[int, int] = {}
        self.max_procs = 0  # most processes alive in one sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sample: dict[int, int] = {}
            total, by_name = tree_rss(self.pids_fn(), sample)
            self.max_procs = max(self.max_procs, len(sample))
            for pid, rss in sample.items():
                self.by_pid[pid] = max(self.by_pid.get(pid, 0), rss)
            self.samples += 1
            if total > self.peak:
                self.peak, self.peak_by_name = total, by_name
            self._stop.wait(self.interval)

    @property
    def largest(self) -> int:
        return max(self.by_pid.values(), default=0)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------------------- loopback cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for `ray start` and for drivers joining it: auth off on both sides, no RAY_ADDRESS leak."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"})
    env.update(extra or {})
    return env


@dataclass
class LocalCluster:
    """Head + worker nodes on 127.0.0.1, each a `ray start --block` process tree we own."""
    port: int
    temp_dir: str
    env: dict[str, str]
    nodes: list[subprocess.Popen] = field(default_factory=list)  # [head, worker1, ...]
    logs: list[Path] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, head_cpus: int = 1, worker_cpus: list[int] = (1,), env: dict[str, str] | None = None,
              timeout: float = 60) -> "LocalCluster":
        # Short private temp dir: Ray's unix socket paths must stay under ~107 characters.
        c = cls(free_port(), tempfile.mkdtemp(prefix="vrd"), ray_env(env))
        try:
            c._launch(["--head", f"--port={c.port}", f"--temp-dir={c.temp_dir}", "--include-dashboard=false",
                       "--node-ip-address=127.0.0.1"], head_cpus, timeout)
            for n in worker_cpus:
                c.add_node(n, timeout)
        except BaseException:
            c.stop()
            raise
        return c

    def add_node(self, num_cpus: int = 1, timeout: float = 60, resources: str | None = None, num_gpus: int = 0) -> int:
        """A worker node; `num_gpus` declares GPUs Ray schedules by (none need exist: model code still checks
        torch.cuda and runs on the CPU), which is how GPU placement and sharing are tested without one."""
        args = [f"--address={self.address}", "--node-ip-address=127.0.0.1"]
        if resources:
            args.append(f"--resources={resources}")
        if num_gpus:
            args.append(f"--num-gpus={num_gpus}")
        self._launch(args, num_cpus, timeout)
        return len(self.nodes) - 1

    def _launch(self, args: list[str], num_cpus: int, timeout: float) -> None:
        ray_bin = str(Path(sys.executable).with_name("ray"))
        log = Path(self.temp_dir) / f"node{len(self.nodes)}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen([ray_bin, "start", "--block", "--disable-usage-stats", f"--num-cpus={num_cpus}",
                                     *args], stdout=f, stderr=subprocess.STDOUT, env=self.env,
                                    start_new_session=True)
        self.nodes.append(proc)
        self.logs.append(log)
        deadline = time.time() + timeout
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"`ray start {' '.join(args)}` did not come up (exit {proc.poll()}); its log "
                                   f"{log}:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)

    def pids(self) -> list[int]:
        return [p.pid for p in self.nodes if p.poll() is None]

    def kill_node(self, index: int) -> None:
        """SIGKILL a node's whole process tree (raylet, its workers, agents): a machine failure, not a stop."""
        if index == 0:
            raise ValueError("node 0 is the head: killing it ends the cluster")
        kill_tree(self.nodes[index])

    def stop(self) -> None:
        for proc in reversed(self.nodes):
            kill_tree(proc)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and all its descendants (a Ray node, a build and its embedded Ray), then reap them."""
    procs = tree(proc.pid)
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    proc.poll()
