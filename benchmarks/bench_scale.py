"""Corpus scale: does the driver's start-up time and memory grow with the number of inputs? (issue 11)

  python benchmarks/bench_scale.py                       # 2k, 20k, 200k inputs, embedded Ray, + 20k on 2 nodes
  python benchmarks/bench_scale.py --sizes 2000 20000    # fewer sizes
  python benchmarks/bench_scale.py --no-cluster

Inputs: img2dataset-style WebDataset tars of 1000 samples each (KEY.jpg 80x64 noise, KEY.txt, KEY.json), named
{00000..NNNNN}.tar and given to the manifest as that brace pattern; built with the pseudo-video core of the
image_text recipe (load_image, pseudo_motion, caption_select, encode: the recipe the issue measured, before the
curation stages were added) to 8-frame 64x64 clips, shards of <= 1000 samples (one input tar -> one output shard). Generated once, cached under
--cache. Per size, `vidrd-data build` runs as a subprocess (embedded Ray, 2 CPUs) and is stopped 3 s after its
first committed shard:
- first_commit_s: from the command's start to the first `_stats.json` (target <= 15 s at 200k);
- driver peak RSS: the `vidrd-data` process alone (Ray's own processes are listed apart), sampled every 50 ms;
- bytes received by the driver per sample: a complete build of the 2k set, `dataset_info.json`'s
  last_build.driver_bytes_received / samples.
The smallest set is also built completely on the loopback 2-node LocalCluster (head 2 CPU + worker 2 CPU):
first commit, driver RSS, bytes per sample, and how many nodes wrote shards.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PER_TAR = 1000


def make_tars(dest: Path, n: int) -> str:
    """ceil(n / PER_TAR) tars; returns the brace pattern naming them (existing tars are reused)."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n_tars = -(-n // PER_TAR)
    for t in range(n_tars):
        path = dest / f"{t:05d}.tar"
        if path.exists():
            continue
        tmp = path.with_suffix(".partial")
        with tarfile.open(tmp, "w") as tf:
            for i in range(PER_TAR):
                key = f"{t:05d}{i:04d}"
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=80)
                files = {f"{key}.jpg": buf.getvalue(), f"{key}.txt": f"tiny noise picture {t} {i} of a web crawl".encode(),
                         f"{key}.json": json.dumps({"key": key, "url": f"http://example.invalid/{key}"}).encode()}
                for name, data in files.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        tmp.rename(path)
    return str(dest / f"{{00000..{n_tars - 1:05d}}}.tar")


RECIPE = {"kind": "image_text", "max_outputs_per_input": 1, "items_per_task": 32,
          "stages": [{"stage": "load_image"}, {"stage": "pseudo_motion", "params": {"seed": 0}},
                     {"stage": "caption_select", "params": {"priority": ["original"]}},
                     {"stage": "encode", "params": {"preset": "veryfast", "crf": 20}}]}


def manifest(path: Path, out: Path, urls: str, address: str | None = None) -> Path:
    import yaml

    recipe = path.parent / "pseudo_video.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    doc = {"name": "scale", "output": str(out), "clip": {"fps": 8, "size": [64, 64], "frames": 8},
           "shard": {"max_samples": PER_TAR}, "ray": {"num_cpus": 2, "object_store_mb": 256, "address": address},
           "sources": [{"name": "web", "kind": "image_text", "recipe": str(recipe),
                        "input": {"format": "webdataset", "urls": urls}}]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(m: Path, out: Path, env: dict, stop_after_first: float | None = 3.0, timeout: float = 900) -> dict:
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(m), "-q"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"driver": 0, "tree": 0}
    stop = threading.Event()

    def sample():
        me = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                peak["driver"] = max(peak["driver"], me.memory_info().rss)
                tree = [me, *me.children(recursive=True)]
                peak["tree"] = max(peak["tree"], sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            stop.wait(0.05)
    threading.Thread(target=sample, daemon=True).start()
    first = None
    shards = out / "shards"
    while proc.poll() is None and time.time() - t0 < timeout:
        if first is None and shards.is_dir() and any(shards.glob("*_stats.json")):
            first = time.time() - t0
        if first is not None and stop_after_first is not None and time.time() - t0 > first + stop_after_first:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        for p in reversed([psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]):
            try:
                p.kill()
            except psutil.Error:
                pass
    proc.wait()
    stop.set()
    res = {"first_commit_s": round(first, 2) if first else None, "driver_peak_mb": round(peak["driver"] / 2**20, 1),
           "tree_peak_mb": round(peak["tree"] / 2**20, 1), "seconds": round(time.time() - t0, 1)}
    writers = {json.loads(p.read_text()).get("writer", {}).get("node_id") for p in shards.glob("*_stats.json")} \
        if shards.is_dir() else set()
    res["writer_nodes"] = len(writers - {None})
    info = out / "dataset_info.json"
    if stop_after_first is None and info.exists():
        last = json.loads(info.read_text())["last_build"]
        res["samples"] = last["counts"].get("success", 0)
        res["driver_bytes_per_sample"] = round(last["driver_bytes_received"] / max(1, res["samples"]), 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 200000])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "vidrd_bench_scale")
    ap.add_argument("--no-cluster", action="store_true")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HF_HUB_OFFLINE"] = "1"
    work = Path(tempfile.mkdtemp(prefix="vidrd_scale_"))
    results = {}
    t = time.time()
    urls = {n: make_tars(args.cache / f"n{max(args.sizes)}", n) for n in args.sizes}  # one tar set, prefixes of it
    print(f"inputs ready in {time.time() - t:.0f} s ({args.cache})", flush=True)
    small = min(args.sizes)
    full = run(manifest(work / "full.yaml", work / "full", urls[small]), work / "full", env, stop_after_first=None)
    print(f"complete build of {small}: {full}", flush=True)
    for n in args.sizes:
        out = work / f"out{n}"
        results[n] = run(manifest(work / f"m{n}.yaml", out, urls[n]), out, env)
        print(f"{n:>7} inputs: {results[n]}", flush=True)
    if not args.no_cluster:
        from vidrd_testing.cluster import LocalCluster

        n = small  # complete build on 2 nodes
        cluster = LocalCluster.start(head_cpus=2, worker_cpus=[2], env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"})
        try:
            out = work / "cluster"
            results["cluster"] = run(manifest(work / "c.yaml", out, urls[n], cluster.address), out, cluster.env,
                                     stop_after_first=None)
            print(f"{n:>7} inputs on 2 nodes (complete): {results['cluster']}", flush=True)
        finally:
            cluster.stop()
    base = results[small]["driver_peak_mb"]
    print("\n| inputs | command -> first committed shard | driver peak RSS | (Ray tree peak) |")
    print("|---:|---:|---:|---:|")
    for n in args.sizes:
        r = results[n]
        print(f"| {n:,} | {r['first_commit_s']} s | {r['driver_peak_mb']} MB ({r['driver_peak_mb'] / base:.2f}x) | "
              f"{r['tree_peak_mb']} MB |")
    print(f"\ndriver bytes received per sample (complete {small} build): {full.get('driver_bytes_per_sample')}")


if __name__ == "__main__":
    main()
