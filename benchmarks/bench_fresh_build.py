"""A long-video build in a fresh process (embedded Ray started, workers' heaps empty), with the embedded workers'
memory settings against numpy's default transparent-huge-page advice.

  python benchmarks/bench_fresh_build.py [--minutes 3] [--pairs 4] [--builds 1]

Each run is a new Python process: init the embedded Ray, then `--builds` builds of bench_long_video's manifest
(its input: the offline clips concatenated at 640x360, 25 fps; whole shots at 256x256, 25 fps). Runs alternate:
- ours: the embedded workers' settings as shipped (vidrd_common.ray_session.worker_memory_env);
- thp: the same with NUMPY_MADVISE_HUGEPAGE=1 set by the user (it wins over ours): numpy's default advice.
Prints the seconds of every build of every run; the first build pays for the workers' fresh memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import load_note  # noqa: E402


def one_run(work: Path, video: Path, builds: int) -> list[float]:
    """In this (fresh) process: start the embedded Ray, build `builds` times; seconds per build."""
    from bench_long_video import write_manifest
    from vidrd_data.build import build
    from vidrd_data.runtime import init_ray

    init_ray(None, None, 1024)
    secs = []
    for i in range(builds):
        manifest = write_manifest(work, video, f"fresh{i}")
        shutil.rmtree(work / f"fresh{i}", ignore_errors=True)
        t = time.perf_counter()
        report = build(manifest, progress=False, out=lambda s: None)
        secs.append(time.perf_counter() - t)
        if report.counts.get("failed"):
            raise SystemExit(f"the build failed items: {dict(report.failures)}")
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--builds", type=int, default=1, help="builds per fresh process")
    ap.add_argument("--run", nargs=2, metavar=("WORK", "VIDEO"), help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.run:
        print(" ".join(f"{s:.2f}" for s in one_run(Path(args.run[0]), Path(args.run[1]), args.builds)))
        return
    from bench_long_video import make_input

    work = Path(tempfile.mkdtemp(prefix="bench_fresh_"))
    try:
        video = make_input(work, args.minutes)
        print(f"{video.name}: fresh-process builds, {args.pairs} alternating pairs; {load_note()}")
        res: dict[str, list[list[float]]] = {"ours": [], "thp": []}
        for _ in range(args.pairs):
            for name in res:
                env = dict(os.environ, **({"NUMPY_MADVISE_HUGEPAGE": "1"} if name == "thp" else {}))
                out = subprocess.run([sys.executable, __file__, "--run", str(work), str(video), "--builds",
                                      str(args.builds)], env=env, capture_output=True, text=True, check=True)
                res[name].append([float(x) for x in out.stdout.split()[-args.builds:]])
                print(f"  {name:4s}: {' '.join(f'{s:.2f}' for s in res[name][-1])} s")
        first = {k: statistics.median(r[0] for r in v) for k, v in res.items()}
        print(f"FIRST BUILD in a fresh process: ours {first['ours']:.2f} s, numpy's huge-page advice "
              f"{first['thp']:.2f} s (medians of {args.pairs}); after: {load_note()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
