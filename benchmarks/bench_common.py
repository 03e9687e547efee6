"""What the data-side benchmarks share: machine load, interleaved timing against an anchor, in-process stages.

Every figure that counts is a RATIO against an anchor measured in the same run, on the same inputs,
interleaved (ours, anchor, ours, anchor, ...) so both see the same machine; absolute speeds are printed
too, with the load average, but only the ratio carries over between machines and runs.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_note() -> str:
    """The machine's load average and core count, for the record next to each figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def machine_cpu() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far, from /proc/stat (Linux; (0, 0) elsewhere).

    Busy covers every process (Ray's workers, ffmpeg children), so its delta over a run is the CPU work that run
    cost. Stolen is time the hypervisor gave our virtual cores to someone else: where it grows, walls stretch
    with no change in our code, and the CPU seconds are the steadier figure."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    steal = fields[7] if len(fields) > 7 else 0
    return (user + nice + system + irq + softirq) / tick, steal / tick


@dataclass
class Timed:
    """Wall seconds of repeated runs of one contender (and the work unit it did, e.g. source seconds), with the
    machine's busy and stolen CPU seconds over each run (`machine_cpu`)."""
    name: str
    walls: list[float] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    steal: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(fn's result, wall s, machine busy CPU s, stolen s) of one call."""
    busy, stolen = machine_cpu()
    t = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t
    busy2, stolen2 = machine_cpu()
    return result, wall, busy2 - busy, stolen2 - stolen


# cProfile's names for the C calls where a video pipeline's unavoidable CPU goes (PyAV 14+)
DECODE_CALL = "<method 'decode' of 'av.packet.Packet' objects>"
ENCODE_CALL = "<method 'encode' of 'av.video.stream.VideoStream' objects>"


def c_call_cpu(fn: Callable[[], Any], names: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    """(process CPU s of fn(), {name: CPU s spent inside the C function of that cProfile name}). Profiling slows
    the Python around them, not the C calls themselves: what one call costs inside is what it costs unprofiled."""
    import cProfile
    import pstats

    prof = cProfile.Profile(time.process_time)
    t = time.process_time()
    prof.runcall(fn)
    total = time.process_time() - t
    stats = pstats.Stats(prof).stats  # {(file, line, name): (primitive calls, calls, tottime, cumtime, callers)}
    inside = {name: sum(v[2] for k, v in stats.items() if k[2] == name) for name in names}
    return total, inside


def interleave(contenders: dict[str, Callable[[], Any]], repeats: int, log=print) -> dict[str, Timed]:
    """Run each contender once per round, in turn, `repeats` rounds; wall time of each call."""
    out = {name: Timed(name) for name in contenders}
    for r in range(repeats):
        for name, fn in contenders.items():
            extra, wall, cpu, steal = measured(fn)
            out[name].walls.append(wall)
            out[name].cpu.append(cpu)
            out[name].steal.append(steal)
            out[name].extra.append(extra)
        log(f"  round {r + 1}/{repeats}: " + ", ".join(
            f"{n} {out[n].walls[-1]:.2f} s (cpu {out[n].cpu[-1]:.1f} s, stolen {out[n].steal[-1]:.1f} s)"
            for n in contenders))
    return out


def ratio_line(what: str, ours: Timed, anchor: Timed, target: float | None, higher_is: str = "faster") -> str:
    """'what: R x (target >= T: met)' where R = the median over rounds of anchor wall / our wall (same work;
    each round's pair ran back to back, so it saw the same machine), then every round's ratio."""
    per_round = [a / o for a, o in zip(anchor.walls, ours.walls)]
    r = statistics.median(per_round)
    verdict = "" if target is None else f"  target >= {target:g}: {'MET' if r >= target else 'NOT MET'}"
    cpu = ""
    if len(ours.cpu) == len(ours.walls) and len(anchor.cpu) == len(anchor.walls) and all(ours.cpu):
        # what the run costs in CPU-hours, and steadier than walls where the hypervisor steals time (machine_cpu)
        cpu_rounds = [a / o for a, o in zip(anchor.cpu, ours.cpu)]
        cpu = (f"; machine CPU anchor/ours {statistics.median(cpu_rounds):.2f} (rounds: "
               f"{', '.join(f'{x:.2f}' for x in cpu_rounds)}; median ours {statistics.median(ours.cpu):.1f} s, "
               f"anchor {statistics.median(anchor.cpu):.1f} s; stolen {sum(ours.steal) + sum(anchor.steal):.0f} s)")
    return (f"RATIO {what}: {r:.2f}x {higher_is}{verdict}  (rounds: {', '.join(f'{x:.2f}' for x in per_round)}; "
            f"median wall ours {ours.median:.2f} s, anchor {anchor.median:.2f} s{cpu})")


def make_stages(specs: list[tuple[str, dict]], clip: dict) -> list:
    """The named stages, built and set up (models loaded) as a worker does once."""
    from vidrd_data.stages.base import StageContext, get_stage

    ctx = StageContext(clip=clip)
    stages = [get_stage(name)(params, ctx) for name, params in specs]
    for stage in stages:
        getattr(stage, "setup", lambda: None)()
    return stages


def apply_stages(stages: list, items: list, timings: dict[str, float] | None = None) -> list:
    """Items through the stages in this process (no Ray): the stages' own work, nothing else. A failed
    item raises: a benchmark must not time a pipeline that silently dropped its inputs."""
    for stage in stages:
        t = time.perf_counter()
        live = [it for it in items if it.alive]
        items = [it for it in items if not it.alive] + (stage.process_batch(live) if live else [])
        if timings is not None:
            timings[stage.name] = timings.get(stage.name, 0.0) + time.perf_counter() - t
        bad = [f"{it.input_id}: {it.reason}" for it in items if it.status == "failed"]
        if bad:
            raise RuntimeError(f"stage {stage.name} failed: {bad[:3]}")
    return items


def run_stages(specs: list[tuple[str, dict]], clip: dict, items: list, timings: dict[str, float] | None = None):
    return apply_stages(make_stages(specs, clip), items, timings)


def build_worker_malloc() -> bool:
    """In a plain worker process standing in for a build's Ray worker: memory as the embedded Ray's workers start
    (vidrd_common.ray_session: MALLOC_ENV applied with mallopt since this process is already running, and numpy's
    huge-page advice off as HUGEPAGE_ENV asks). False where the C library is not glibc."""
    import ctypes
    import ctypes.util
    import platform

    import numpy as np

    from vidrd_common.ray_session import MALLOC_ENV

    np._core.multiarray._set_madvise_hugepage(False)  # what NUMPY_MADVISE_HUGEPAGE=0 does at import
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    ok = libc.mallopt(m_mmap_threshold, int(MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]))
    return bool(ok and libc.mallopt(m_trim_threshold, int(MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"])))
