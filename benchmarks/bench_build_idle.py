"""How busy a warm long-video build keeps the machine: wall, idle core-seconds and the utilisation timeline.

  python benchmarks/bench_build_idle.py                 # the 3-minute source, 1 timed build
  python benchmarks/bench_build_idle.py --minutes 1 --rounds 3 --timeline

bench_long_video's input and manifest (whole shots at 256x256, 25 fps, segmentation filters off), embedded Ray
on 2 CPUs; one untimed build loads the models, then each timed build runs with them loaded (`warm`). The
machine's /proc/stat is sampled every 0.25 s: idle core-seconds = what the CPUs left unused while the build
ran (time the hypervisor stole counts as used). One video on all CPUs is where a build can leave a CPU
waiting: for a time range's scan to end, for the other half of its clips. Compare two versions of the code
by running this at each, alternately (BENCHMARKS.md gives the commands used). Many rounds show whether a build
leaves work or memory behind for the next (machine CPU seconds, stolen ones apart, and the workers' RSS, build
after build).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import load_note, machine_cpu  # noqa: E402

STEP_S = 0.25


def _cpu_jiffies() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of the whole machine."""
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return v[3] + v[4], sum(v)


def timed_build(manifest: Path, cpus: int) -> tuple[float, float, list[tuple[float, float]], tuple[float, float]]:
    """(wall s, idle core-seconds, [(t, busy CPUs)], (machine CPU s, stolen s)) of one warm build."""
    from bench_long_video import run_ours

    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        i0, t0 = _cpu_jiffies()
        while not stop.wait(STEP_S):
            i1, t1 = _cpu_jiffies()
            samples.append((time.perf_counter(), cpus * (1 - (i1 - i0) / max(1, t1 - t0))))
            i0, t0 = i1, t1

    th = threading.Thread(target=sample, daemon=True)
    busy0, stolen0 = machine_cpu()
    start = time.perf_counter()
    th.start()
    run_ours(manifest, "warm")
    wall = time.perf_counter() - start
    busy1, stolen1 = machine_cpu()
    stop.set()
    th.join()
    inside = [(t - start, busy) for t, busy in samples if t <= start + wall + 1e-9]
    idle = sum(max(0.0, cpus - busy) * STEP_S for _, busy in inside)
    return wall, idle, inside, (busy1 - busy0, stolen1 - stolen0)


def workers_rss_mib() -> float:
    """Resident memory of this machine's Ray worker and actor processes together: a corpus run builds video after
    video in the same workers, so what a build leaves behind would show as growth from build to build."""
    import psutil

    total = 0
    for p in psutil.process_iter(["cmdline", "memory_info"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if ("ray::" in cmd or "default_worker.py" in cmd) and p.info["memory_info"] is not None:
            total += p.info["memory_info"].rss
    return total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0, help="source length")
    ap.add_argument("--rounds", type=int, default=1, help="timed builds")
    ap.add_argument("--timeline", action="store_true", help="print busy CPUs per 0.25 s")
    ap.add_argument("--source-size", default="640x360", metavar="WxH", help="the source's frame size (bench_long_video's)")
    args = ap.parse_args()
    from bench_long_video import make_input, parse_size, run_ours, write_manifest

    from vidrd_data.runtime import init_ray

    cpus = 2
    work = Path(tempfile.mkdtemp(prefix="bench_idle_"))
    try:
        init_ray(None, num_cpus=cpus, object_store_mb=1024)
        manifest = write_manifest(work, make_input(work, args.minutes, parse_size(args.source_size)), "ours")
        run_ours(manifest, "cold")  # loads the models (kept for the timed builds)
        print(f"{args.minutes:g}-minute {args.source_size} source, {cpus} CPUs, {args.rounds} warm builds; {load_note()}")
        walls, idles = [], []
        for r in range(args.rounds):
            wall, idle, timeline, (busy, stolen) = timed_build(manifest, cpus)
            walls.append(wall)
            idles.append(idle)
            print(f"  build {r + 1}: wall {wall:.2f} s, idle {idle:.2f} core-s ({idle / (cpus * wall):.1%}), machine "
                  f"CPU {busy:.2f} s, stolen {stolen:.2f} s; Ray workers' RSS {workers_rss_mib():.0f} MiB")
            if args.timeline:
                print("   " + " ".join(f"{t:.2f}:{b:.1f}" for t, b in timeline))
        print(f"median: wall {statistics.median(walls):.2f} s, idle {statistics.median(idles):.2f} core-s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
