"""Pseudo-video throughput vs the bare work, and peak memory vs the number of inputs.

  python benchmarks/bench_pseudo_video.py [--inputs 96] [--scale 10]

1. Bare bound: decode each image and encode the same 16 frames (256x256, libx264 veryfast, crf 20) with
   PyAV, in two plain processes (multiprocessing, no Ray, no framework). The frames are the ones our
   pipeline renders, prepared beforehand, so the bound is exactly "decode + encode".
2. Ours: `vidrd_data.build.build` on the same inputs (Ray already started: start-up is reported apart).
3. Memory: peak RSS summed over the driver and all Ray worker processes, for N and scale x N inputs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SIZE, FRAMES, FPS = (256, 256), 16, 8


def make_inputs(dest: Path, n: int) -> list[Path]:
    from vidrd_testing.demo_data import prepare_photos

    photos = REPO / "data/demo/photos"
    if not photos.is_dir():
        prepare_photos(photos)
    srcs = sorted(p for p in photos.glob("*.png"))
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        src = srcs[i % len(srcs)]
        img = dest / f"{src.stem}_{i:05d}.jpg"  # JPEG like a LAION-style set
        if not img.exists():
            Image.open(src).convert("RGB").save(img, quality=92)
            shutil.copy(src.with_suffix(".txt"), img.with_suffix(".txt"))
        out.append(img)
    return out


def _bare_one(args):
    from vidrd_data.media.encode import encode_mp4

    path, frames = args
    with Image.open(path) as im:
        im.convert("RGB").load()
    return len(encode_mp4(frames, FPS))


def bare_rate(images: list[Path]) -> float:
    from vidrd_data import pseudo_motion as pm

    jobs = []
    for p in images:  # the same frames our pipeline renders (prepared outside the timed region)
        img = Image.open(p).convert("RGB")
        motion, windows = pm.fit_motion(img.size, SIZE, pm.draw_motion(pm.item_seed(0, p.stem)), FRAMES, 2.0)
        jobs.append((p, pm.render(img, windows, SIZE)))
    # spawn, not fork: forking a process that holds a Ray core worker's threads can crash the child.
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_bare_one, jobs[:4])  # warm both processes (imports)
        t0 = time.perf_counter()
        pool.map(_bare_one, jobs, chunksize=1)
        return len(jobs) / (time.perf_counter() - t0)


class RssSampler:
    """Sum of RSS over this process and its descendants (embedded Ray: gcs, raylet, workers), at 20 Hz."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        # Embedded Ray's processes (gcs, raylet, workers) all descend from this driver: count only those,
        # not other Ray clusters that may run on the machine.
        me = psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def ours(images_dir: Path, out: Path) -> tuple[float, float, int]:
    from vidrd_data.build import build

    manifest = out.parent / f"{out.name}.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "bench", "output": str(out), "clip": {"fps": FPS, "size": list(SIZE), "frames": FRAMES},
        "shard": {"max_samples": 100},
        "sources": [{"name": "bench", "kind": "image_text", "recipe": str(REPO / "pipelines/image_text.yaml"),
                     "input": {"format": "folder", "root": str(images_dir)}}]}))
    with RssSampler() as rss:
        t0 = time.perf_counter()
        report = build(manifest, progress=False, out=lambda s: None)
        dt = time.perf_counter() - t0
    assert report.counts["success"] == len(list(images_dir.glob("*.jpg"))), report.counts
    return report.counts["success"] / dt, dt, rss.peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=96)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="bare/ours runs, interleaved; the best of each is kept")
    args = ap.parse_args()
    from vidrd_data.runtime import init_ray

    work = Path(tempfile.mkdtemp(prefix="bench_pv_"))
    small = make_inputs(work / "small", args.inputs)
    t0 = time.perf_counter()
    init_ray(None, num_cpus=2, object_store_mb=512)
    print(f"ray start-up: {time.perf_counter() - t0:.1f} s (excluded below)")
    ours(work / "small", work / "warm")  # warm the worker pool and imports
    bares, rates, peak1 = [], [], 0
    for r in range(args.repeats):  # interleaved, so both see the same machine
        bares.append(bare_rate(small))
        rate, dt, peak = ours(work / "small", work / f"out1_{r}")
        rates.append(rate)
        peak1 = max(peak1, peak)
        print(f"  run {r}: bare {bares[-1]:.1f} clips/s, ours {rate:.1f} clips/s ({rate / bares[-1]:.2f})")
    bare, rate = max(bares), max(rates)
    print(f"bare decode+encode, 2 processes: {bare:.1f} clips/s  ({FRAMES} frames {SIZE[0]}x{SIZE[1]}, x264 veryfast)")
    print(f"vidrd-data build, {args.inputs} inputs: {rate:.1f} clips/s = {rate / bare:.2f} of the bare bound (best of "
          f"{args.repeats}); peak RSS {peak1 / 2**20:.0f} MiB")
    make_inputs(work / "big", args.inputs * args.scale)
    rate10, dt10, peak10 = ours(work / "big", work / "out10")
    print(f"vidrd-data build, {args.inputs * args.scale} inputs: {rate10:.1f} clips/s ({dt10:.1f} s) = "
          f"{rate10 / bare:.2f} of the bound; peak RSS {peak10 / 2**20:.0f} MiB = {peak10 / peak1:.2f}x the "
          f"{args.inputs}-input build")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
