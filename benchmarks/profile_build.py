"""Where a whole `vidrd-data build` spends its CPU (driver + Ray workers), sampled with py-spy.

  pip install py-spy    # into the venv; not a project requirement
  python benchmarks/profile_build.py record pseudo_video|long_video|first_shard [--top 25] [--raw /tmp/build.txt]
  python benchmarks/profile_build.py warm [--minutes 3] [--source-size 640x360]   # a warm long-video build only

`record` starts `run` (bench_pseudo_video's 96 JPEG inputs, or bench_long_video's 1-minute source, built once,
embedded Ray on 2 CPUs, like the benchmarks; or first_shard: the demo manifest from a cold start until its first
shard is committed, Ray's start and the model actors' imports included, as bench_first_shard.py times it) and
attaches `py-spy record` to the driver and to every Ray worker as it appears (py-spy's --subprocesses does not reach workers the raylet starts), active samples only;
then `summarize` prints the share of samples per process kind, by the innermost vidrd_data frame, and by
leaf function (where CPU actually burns).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(pipeline: str) -> None:
    from vidrd_data.runtime import init_ray

    work = Path(tempfile.mkdtemp(prefix="prof_build_"))
    try:
        if pipeline != "first_shard":  # that one starts its own, timed like a user's build
            init_ray(None, num_cpus=2, object_store_mb=512)
        if pipeline == "pseudo_video":
            from bench_pseudo_video import make_inputs, run_ours, write_manifest

            n = len(make_inputs(work / "jpg", 96, "jpg"))
            run_ours(write_manifest(work / "jpg", work / "out"), n)
        elif pipeline == "first_shard":  # the demo as `vidrd-data build` runs it, until its first commit
            first_shard_until_commit(work / "out")
        else:
            from bench_long_video import make_input, run_ours, write_manifest

            print(run_ours(write_manifest(work, make_input(work, 1.0), "ours")))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def first_shard_until_commit(out: Path) -> None:
    """`vidrd-data build` of the demo manifest in this process; exits (Ray's reaper stops its processes) the moment
    the first shard's commit marker appears, so the samples cover command -> first shard (bench_first_shard.py)."""
    import os
    import threading
    import time

    from bench_common import REPO

    from vidrd_data.build import build

    t0 = time.perf_counter()

    def watch() -> None:
        while not any(out.rglob("*_stats.json")):
            time.sleep(0.05)
        print(f"first shard committed after {time.perf_counter() - t0:.2f} s (py-spy attached)", flush=True)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    os.chdir(REPO)
    build(REPO / "manifests/demo.yaml", output=str(out), progress=False, out=lambda s: None)


def _kind(proc: str) -> str:
    if "ray::" in proc or "default_worker" in proc or proc == "ray_worker":
        return "ray worker"
    if "raylet" in proc or "gcs_server" in proc or "dashboard" in proc or "log_monitor" in proc:
        return "ray services"
    return "driver"


def summarize(path: str, top: int) -> None:
    by_kind, by_proc = collections.Counter(), collections.Counter()
    by_ours, by_leaf = collections.Counter(), collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        by_kind[_kind(frames[0])] += n
        by_proc[frames[0][:60]] += n
        ours = [f for f in frames if "vidrd_data/" in f or "benchmarks/" in f]
        by_ours[re.sub(r" \(.*/(vidrd_data|benchmarks)/", r" (\1/", ours[-1]) if ours else "(no vidrd frame)"] += n
        by_leaf[re.sub(r" \(.*/(site-packages|lib/python3\.\d+)/", r" (", frames[-1])] += n
    print(f"{total} samples")
    for title, counter in (("process kind", by_kind), ("process", by_proc), ("innermost vidrd frame", by_ours),
                           ("leaf", by_leaf)):
        print(f"\nby {title}:")
        for name, n in counter.most_common(top):
            print(f"  {n / total:6.1%}  {name[:150]}")


def _py_spy() -> Path:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        sys.exit("py-spy is not installed in this venv: pip install py-spy")
    return spy


def _attach(spy: Path, pid: int, dest: Path, rate: int):
    """py-spy sampling process `pid` (active samples only) into dest/<pid>.txt until it exits or gets SIGINT."""
    import subprocess

    return subprocess.Popen([str(spy), "record", "-p", str(pid), "-r", str(rate), "--format", "raw", "--nonblocking",
                             "-o", str(dest / f"{pid}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _merge(raw: str, dest: Path, names: dict[int, str]) -> None:
    """One raw file of every sampled process; each stack starts with its process's name ("by process")."""
    with open(raw, "w") as out:
        for f in dest.glob("*.txt"):
            name = names.get(int(f.stem), "?").replace(";", ",").replace(" ", "_")
            out.writelines(f"{name};{line}\n" for line in f.read_text().splitlines() if line.strip())


def record(pipeline: str, raw: str, rate: int = 50) -> None:
    import subprocess
    import time

    import psutil

    spy = _py_spy()
    tmp = Path(tempfile.mkdtemp(prefix="prof_spy_"))
    build = subprocess.Popen([sys.executable, __file__, "run", pipeline])
    spies: dict[int, subprocess.Popen] = {}
    names: dict[int, str] = {}  # a worker's title as last seen (ray::IDLE becomes ray::<its task or actor>)
    try:
        while build.poll() is None:
            try:
                procs = [psutil.Process(build.pid), *psutil.Process(build.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:  # the driver and Ray's workers (not Ray's own services: they must start undisturbed)
                    cmd = " ".join(p.cmdline())
                    wanted = p.pid == build.pid or "ray::" in cmd or "default_worker.py" in cmd
                except psutil.Error:
                    continue
                if wanted:
                    names[p.pid] = ("driver" if p.pid == build.pid else cmd.split()[0] if "ray::" in cmd
                                    else "ray worker")
                if wanted and p.pid not in spies:
                    spies[p.pid] = _attach(spy, p.pid, tmp, rate)
            time.sleep(0.2)
        build.wait()
    finally:
        for sp in spies.values():  # each ends when its process does; a worker Ray keeps alive is stopped here
            try:
                sp.wait(timeout=20)
            except subprocess.TimeoutExpired:
                sp.send_signal(2)  # py-spy writes its file on SIGINT
                sp.wait()
    _merge(raw, tmp, names)
    shutil.rmtree(tmp, ignore_errors=True)
    if build.returncode:
        sys.exit(f"the build failed (rc {build.returncode})")
    print(f"{len(spies)} processes sampled -> {raw}")


def record_warm(raw: str, minutes: float, size: str, rate: int = 100) -> None:
    """One warm long-video build (bench_long_video's source and manifest, models loaded by an untimed build first),
    py-spy attached to every Ray worker and actor for that build only: the steady state of a corpus run, without
    the start-up that `record long_video` mixes in."""
    import signal
    import time

    import psutil
    from bench_long_video import make_input, parse_size, run_ours, write_manifest

    from vidrd_data.runtime import init_ray

    spy = _py_spy()
    work = Path(tempfile.mkdtemp(prefix="prof_warm_"))
    try:
        init_ray(None, num_cpus=2, object_store_mb=1024)
        manifest = write_manifest(work, make_input(work, minutes, parse_size(size)), "ours")
        run_ours(manifest, "cold")  # worker processes, imports, model actors: not sampled
        spies, names = {}, {}
        samples = work / "spy"  # py-spy's files only: the build's own files stay beside it
        samples.mkdir()
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if "ray::" in cmd:
                names[proc.pid] = f"{cmd.split()[0]}_{proc.pid}"
                spies[proc.pid] = _attach(spy, proc.pid, samples, rate)
        time.sleep(1.0)  # py-spy attached before the build starts
        t = time.perf_counter()
        run_ours(manifest, "warm")
        print(f"warm build sampled: {time.perf_counter() - t:.2f} s (py-spy slows it)")
        for sp in spies.values():
            sp.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            sp.wait()
        _merge(raw, samples, names)
    finally:
        shutil.rmtree(work, ignore_errors=True)


PIPELINES = ["pseudo_video", "long_video", "first_shard"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("pipeline", choices=PIPELINES)
    rec = sub.add_parser("record")
    rec.add_argument("pipeline", choices=PIPELINES)
    rec.add_argument("--raw", default="/tmp/vidrd_build_profile.txt")
    rec.add_argument("--top", type=int, default=25)
    w = sub.add_parser("warm", help="one warm long-video build (models loaded beforehand), its Ray workers sampled")
    w.add_argument("--minutes", type=float, default=3.0)
    w.add_argument("--source-size", default="640x360")
    w.add_argument("--raw", default="/tmp/vidrd_warm_profile.txt")
    w.add_argument("--top", type=int, default=25)
    s = sub.add_parser("summarize")
    s.add_argument("raw")
    s.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    if args.cmd == "run":
        run(args.pipeline)
    elif args.cmd == "record":
        record(args.pipeline, args.raw)
        summarize(args.raw, args.top)
    elif args.cmd == "warm":
        record_warm(args.raw, args.minutes, args.source_size)
        summarize(args.raw, args.top)
    else:
        summarize(args.raw, args.top)


if __name__ == "__main__":
    main()
