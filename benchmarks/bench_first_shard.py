"""Command -> first committed shard: `vidrd-data build` on the demo manifest, as a user runs it.

  python benchmarks/bench_first_shard.py            # quick: 1 run
  python benchmarks/bench_first_shard.py --full     # 3 runs (median)

Each run starts `vidrd-data build --manifest manifests/demo.yaml --output TMP` as a fresh process (Python
start, imports, embedded Ray start, listing, first tasks all included) and stops the clock when the first
shard's commit marker (`*_stats.json`, written last by the commit protocol) appears; the build is then
stopped (its whole process group). Target: <= 10 s on the demo (issue 17).

`--floor` (make bench passes it) then times, each in a fresh process with nothing else running, the steps that
come one after another before any shard can commit: the driver's imports, Ray's start, and a model actor's
start (every source of the demo has a model stage, so its first shard waits for one): the quickest of the demo's
model actors to import and load (CLIP, BLIP-2, MiniGPT-4, each timed), and `import torch` alone (the least any
model actor imports). Their sum is a bound no schedule beats on this machine.
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


# Each in a fresh process, alone on the machine. A first shard waits for these one after the other: the
# driver's imports, then Ray's start, then (every source of the demo has a model stage) a model actor's start.
_TIMED = "import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
DRIVER = ("", "import vidrd_data.cli, vidrd_data.build, ray")  # timed with the interpreter's start
RAY = ("from vidrd_data.runtime import init_ray", "init_ray(None, None, 512)")  # as the demo's build calls it
TORCH = ("", "import torch")  # what any model actor imports first


def timed_in_fresh_process(setup: str, code: str) -> float:
    """Seconds of `code` in a new interpreter after `setup`; without a setup, the process's whole wall time
    (the interpreter's start included)."""
    src = f"{setup}\n" + _TIMED.format(code=code)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", src], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t
    if out.returncode:
        raise RuntimeError(f"timing {code!r} failed: {out.stderr[-600:]}")
    return wall if not setup else float(out.stdout.split()[-1])


_MODELS = "import yaml; from pathlib import Path; models = yaml.safe_load(open({m!r}))['models']; base = Path({base!r})"
MODEL_LOADS = {  # the demo's model actors, each as its stage loads it (imports included): the first shard waits for one
    "CLIP (open_clip)": ("from vidrd_data.models.clip_embedder import resolve_clip_spec, shared_open_clip",
                         "shared_open_clip(resolve_clip_spec(models['clip'], base), device='cpu')"),
    "BLIP-2 (transformers)": ("from vidrd_data.models.blip2 import Blip2Captioner",
                              "Blip2Captioner(base / models['blip2']['path'], device='cpu')"),
    "MiniGPT-4 (transformers)": ("from vidrd_data.models.minigpt4 import MiniGPT4Captioner",
                                 "MiniGPT4Captioner(base / models['minigpt4']['path'], device='cpu')"),
}


def first_shard_floor(manifest: Path) -> dict[str, float]:
    """Seconds of each step a first shard of the demo waits for, one after another, each timed alone."""
    steps = {"driver imports (python start, vidrd-data build's modules, ray)": timed_in_fresh_process(*DRIVER),
             "ray start (init_ray as the demo's build calls it)": timed_in_fresh_process(*RAY),
             "torch import alone (the least a model actor imports)": timed_in_fresh_process(*TORCH)}
    models = _MODELS.format(m=str(manifest), base=str(REPO))
    for name, (imports, load) in MODEL_LOADS.items():  # the import is the point: timed with the load
        steps[f"model actor {name}: imports + load"] = timed_in_fresh_process(models, f"{imports}; {load}")
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="3 runs")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--manifest", default=str(REPO / "manifests/demo.yaml"))
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--floor", action="store_true", help="also time the steps a first shard waits for, each in a fresh "
                    "process (driver imports, Ray's start, the demo's model actors): their sum bounds it")
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
    if args.floor:
        steps = first_shard_floor(Path(args.manifest))
        for name, step_s in steps.items():
            print(f"  {name}: {step_s:.2f} s")
        driver, ray_start, torch_only, *loads = steps.values()
        print(f"BOUND first shard: driver imports + Ray's start + the quickest of the demo's model actors = "
              f"{driver + ray_start + min(loads):.2f} s on this machine before any work (with an actor that imported "
              f"torch alone: {driver + ray_start + torch_only:.2f} s); target 10 s")
    print(f"after: {load_note()}")


if __name__ == "__main__":
    main()
