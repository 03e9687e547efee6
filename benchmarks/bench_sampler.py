"""Sampling cost per clip and peak memory for K = 1, 2, 4, 8 clips (tiny VidRD model, CPU).

The iterative sampler keeps only clip k−1's noise and guides and the writer streams each clip to the mp4, so
time should grow linearly in K (cost per clip within 10% of K=1's) and peak memory stay flat (within 10%).

Each K runs in a fresh process: load the model, encode the prompt, warm up (two 1-step clips), then sample K
clips end to end (sampling, temporal VAE decoding, H.264 writing) `--repeats` times and keep the fastest
repeat (least CPU time). Cost per clip = the mean, over clips, of the process's CPU time (all its threads)
from one clip's frames written to the next's (the first clip: from the start of sampling). Wall time is
reported beside it, but on a shared machine it measures the neighbours too. Totals, which add opening and
closing the mp4, are reported as well. Memory is the
peak resident set size during the measured runs (sampled every 2 ms), reported both in total and above the
process's resident size just before them (the part the sampler itself adds). glibc is told to serve blocks of
64 KiB and more from mmap and to trim on free, so that the resident size follows live memory, not the
allocator's high-water mark.

    .venv/bin/python benchmarks/bench_sampler.py [--steps 10] [--repeats 3] [--threads 1] [--json out.json]
Exit status 1 when a criterion fails (unless --no-check).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CLIP_COUNTS = (1, 2, 4, 8)
TOLERANCE = 0.10


class PeakRSS:
    """Polls this process's resident set size in a thread; `.peak` is the maximum seen."""

    def __init__(self, interval: float = 0.002):
        import psutil

        self.proc, self.interval, self.peak, self._stop = psutil.Process(), interval, 0, threading.Event()

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def worker(args) -> dict:
    import gc

    import torch

    from vidrd_model.pipeline_io import load_vidrd
    from vidrd_model.sampling.decode import decode_clip
    from vidrd_model.sampling.loop import LongVideoSettings, sample_long_video, text_conditions
    from vidrd_model.sampling.pipeline import latent_shape_for
    from vidrd_model.sampling.schedulers import make_scheduler
    from vidrd_model.sampling.text import encode_prompt
    from vidrd_model.sampling.writer import VideoWriter, latents_video_to_uint8

    torch.set_num_threads(args.threads)
    comps = load_vidrd(args.model)
    out = Path(args.workdir)
    cond = encode_prompt(comps.tokenizer, comps.text_encoder, "a dog running on the beach")
    uncond = encode_prompt(comps.tokenizer, comps.text_encoder, "watermark")

    @torch.no_grad()
    def run(num_clips: int, steps: int, name: str):
        """Sample, decode and write `num_clips` clips; (wall seconds in total, CPU seconds in total, wall seconds
        of each clip, CPU seconds of each clip). A clip's time runs from the previous clip's frames written (the
        first: from the start of sampling) to its own frames written."""
        settings = LongVideoSettings(num_clips=num_clips, num_frames=args.frames, overlap_frames=args.overlap,
                                     num_inference_steps=steps, guidance_scale=10.0)
        shape, _ = latent_shape_for(comps.unet, comps.vae, settings, args.size, args.size)
        stamps, cpu_stamps = [], []
        t0, c0 = time.perf_counter(), time.process_time()
        with VideoWriter(out / f"{name}.mp4", fps=8, sidecar=False) as w:
            for clip in sample_long_video(comps.unet, make_scheduler("ddim", comps.scheduler.config), cond, uncond,
                                          settings, shape, generator=torch.Generator().manual_seed(0)):
                w.write_clip(latents_video_to_uint8(decode_clip(comps.vae, clip.latents)[0]))
                stamps.append(time.perf_counter())
                cpu_stamps.append(time.process_time())
        total, cpu_total = time.perf_counter() - t0, time.process_time() - c0
        return (total, cpu_total, [b - a for a, b in zip([t0] + stamps[:-1], stamps)],
                [b - a for a, b in zip([c0] + cpu_stamps[:-1], cpu_stamps)])

    run(2, 1, "warmup")
    gc.collect()
    best = None
    with PeakRSS() as mem:
        base = mem.peak
        for r in range(args.repeats):
            res = run(args.k, args.steps, f"k{args.k}_{r}")
            if best is None or res[1] < best[1]:
                best = res
    total, cpu_total, clips, cpu_clips = best
    return {"K": args.k, "seconds": total, "cpu_seconds": cpu_total,
            "seconds_per_clip": sum(clips) / len(clips), "cpu_seconds_per_clip": sum(cpu_clips) / len(cpu_clips),
            "clip_seconds": clips, "clip_cpu_seconds": cpu_clips,
            "rss_before_mb": base / 2**20, "peak_rss_mb": mem.peak / 2**20,
            "peak_extra_mb": (mem.peak - base) / 2**20}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="pixels (latents are size/8)")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--no-check", action="store_true")
    p.add_argument("--worker", dest="k", type=int, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.k is not None:
        print(json.dumps(worker(args)))
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vidrd_testing.tiny_vidrd import make_tiny_vidrd

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_vidrd(Path(tmp) / "model", perturb_temporal=0.05)
        for k in CLIP_COUNTS:
            cmd = [sys.executable, __file__, "--worker", str(k), "--model", str(model), "--workdir", tmp,
                   "--steps", str(args.steps), "--repeats", str(args.repeats), "--threads", str(args.threads),
                   "--frames", str(args.frames), "--overlap", str(args.overlap), "--size", str(args.size)]
            # large blocks straight from mmap and returned on free: resident size follows live memory
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
            res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"K={k}: per clip {r['cpu_seconds_per_clip']:.3f} CPU s ({r['seconds_per_clip']:.3f} wall s); total "
                  f"{r['cpu_seconds']:.2f} CPU s ({r['seconds']:.2f} wall s); peak RSS "
                  f"{r['peak_rss_mb']:.1f} MB ({r['peak_extra_mb']:+.1f} MB over the {r['rss_before_mb']:.1f} MB "
                  "before sampling)", flush=True)
    base = rows[0]
    checks = {
        "cpu_time_per_clip_within_10pct": all(
            abs(r["cpu_seconds_per_clip"] / base["cpu_seconds_per_clip"] - 1) <= TOLERANCE for r in rows),
        "peak_rss_within_10pct": all(abs(r["peak_rss_mb"] / base["peak_rss_mb"] - 1) <= TOLERANCE for r in rows),
    }
    summary = {"config": {k: v for k, v in vars(args).items() if k not in ("k", "model", "workdir", "json")},
               "device": "cpu", "rows": rows, "checks": checks}
    for r in rows:
        r["per_clip_vs_k1"] = r["cpu_seconds_per_clip"] / base["cpu_seconds_per_clip"]
        r["wall_per_clip_vs_k1"] = r["seconds_per_clip"] / base["seconds_per_clip"]
        r["peak_rss_vs_k1"] = r["peak_rss_mb"] / base["peak_rss_mb"]
    print(json.dumps({"checks": checks, "cpu_per_clip_vs_k1": [round(r["per_clip_vs_k1"], 3) for r in rows],
                      "wall_per_clip_vs_k1": [round(r["wall_per_clip_vs_k1"], 3) for r in rows],
                      "peak_rss_vs_k1": [round(r["peak_rss_vs_k1"], 3) for r in rows]}))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0 if args.no_check or all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
