"""Command -> first committed shard: `vidrd-data build` on the demo manifest, as a user runs it.

  python benchmarks/bench_first_shard.py            # quick: 1 run
  python benchmarks/bench_first_shard.py --full     # 3 runs (median)

Each run starts `vidrd-data build --manifest manifests/demo.yaml --output TMP` as a fresh process (Python
start, imports, embedded Ray start, listing, first tasks all included) and stops the clock when the first
shard's commit marker (`*_stats.json`, written last by the commit protocol) appears; the build is then
stopped (its whole process group). Target: <= 10 s on the demo (issue 17).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import REPO, load_note  # noqa: E402


def first_shard_seconds(manifest: Path, timeout: float) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench_first_"))
    cli = Path(sys.executable).parent / "vidrd-data"
    t = time.perf_counter()
    proc = subprocess.Popen([str(cli), "build", "--manifest", str(manifest), "--output", str(out), "-q"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        while time.perf_counter() - t < timeout:
            if any(out.rglob("*_stats.json")):
                return time.perf_counter() - t
            if proc.poll() is not None:
                raise RuntimeError(f"the build ended (rc {proc.returncode}) without a committed shard: "
                                   f"{proc.stderr.read().decode()[-800:]}")
            time.sleep(0.05)
        raise RuntimeError(f"no committed shard within {timeout:.0f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the build we started, with the Ray processes it started
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="3 runs")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--manifest", default=str(REPO / "manifests/demo.yaml"))
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    runs = args.runs or (3 if args.full else 1)
    if not (REPO / "data/demo").is_dir():
        sys.exit("the demo data is missing: python -m vidrd_testing.demo_data data/demo (make setup does it)")
    print(f"command -> first committed shard, {runs} run(s); {load_note()}")
    secs = []
    for r in range(runs):
        secs.append(first_shard_seconds(Path(args.manifest), args.timeout))
        print(f"  run {r + 1}/{runs}: {secs[-1]:.2f} s")
    med = statistics.median(secs)
    print(f"FIRST SHARD demo: {med:.2f} s (median of {runs})  target <= 10 s: {'MET' if med <= 10 else 'NOT MET'}")
    print(f"after: {load_note()}")


if __name__ == "__main__":
    main()
