"""Is the shard loader the bottleneck of training? Training throughput (samples/s) on CPU at a tiny
configuration, fed (a) by the real loader (webdataset + PyAV decode in 2 dataloader workers) and (b) by the
same batches pre-decoded in memory, in one run. Pass: (a) >= 0.9 x (b).

    .venv/bin/python benchmarks/bench_train_loader.py [--steps 12 --repeats 2 --dataloader-workers 2]

Both runs use the same training loop (vidrd_model.training.loop.run_training) and model; the rate is
measured after `--warmup` steps (worker start-up and first-step allocations excluded). Runs alternate
(loader, memory, loader, memory...) and the best of each is kept, to damp noise from other processes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rate(result, warmup: int, batch_size: int) -> float:
    t = result.step_end_times
    return (len(t) - 1 - warmup) * batch_size / (t[-1] - t[warmup])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=32, help="training clip side (source clips are 64x64, 16 frames)")
    ap.add_argument("--dataloader-workers", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--device", default="cpu", help="cpu (the issue's setting) or cuda")
    ap.add_argument("--worker-start", default=None, choices=["fork", "spawn", "forkserver"],
                    help="how dataloader workers start (default: the platform's, fork on Linux)")
    args = ap.parse_args()

    import torch

    from vidrd_model.data import build_train_loader
    from vidrd_testing.synthetic_shards import write_synthetic_shards
    from vidrd_testing.tiny_vidrd import make_tiny_vidrd
    from vidrd_model.training import load_config, run_training, single_process_context
    from vidrd_model.training.runner import build_task

    with tempfile.TemporaryDirectory(prefix="bench_train_loader_") as tmp:
        tmp = Path(tmp)
        model = make_tiny_vidrd(tmp / "model")
        write_synthetic_shards(str(tmp / "data"), num_shards=4, per_shard=8, frames=16, size=64)

        def config(workers: int, out: str):
            return load_config(overrides={
                "model": {"pretrained": str(model)},
                "data": {"shards": str(tmp / "data" / "shards"), "batch_size": args.batch_size,
                         "num_workers": workers, "shuffle_buffer": 16, "worker_start_method": args.worker_start,
                         "clip": {"num_frames": args.frames, "frame_stride": 2, "height": args.size, "width": args.size}},
                "optim": {"warmup_steps": 0},
                "run": {"output_dir": str(tmp / out), "max_steps": args.steps, "checkpoint_every": 0,
                        "logger": "csv", "log_every": 1000},
            })

        loader_cfg = config(args.dataloader_workers, "loader")
        task = build_task("unet", loader_cfg, torch.device(args.device))  # one model for all runs
        it = iter(build_train_loader(loader_cfg.data, task.tokenizer)[0])
        in_memory = [next(it) for _ in range(8)]  # decoded once, cycled
        del it
        # loader alone: how fast it produces batches with nothing else running
        t0 = time.perf_counter()
        it = iter(build_train_loader(loader_cfg.data, task.tokenizer)[0])
        next(it)
        t1 = time.perf_counter()
        n = 30
        for _ in range(n):
            next(it)
        loader_only = n * args.batch_size / (time.perf_counter() - t1)
        del it

        rates = {"loader": [], "memory": []}
        for r in range(args.repeats):
            res = run_training(task, config(args.dataloader_workers, f"loader{r}"), single_process_context(args.device))
            rates["loader"].append(rate(res, args.warmup, args.batch_size))
            res = run_training(task, config(0, f"memory{r}"), single_process_context(args.device),
                               batch_source=itertools.cycle(in_memory))
            rates["memory"].append(rate(res, args.warmup, args.batch_size))

    best = {k: max(v) for k, v in rates.items()}
    ratio = best["loader"] / best["memory"]
    report = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "config": {"batch_size": args.batch_size, "frames": args.frames, "size": args.size,
                   "dataloader_workers": args.dataloader_workers, "steps": args.steps, "warmup": args.warmup,
                   "source_clips": "16 frames 64x64 H.264"},
        "samples_per_s": {"with_loader": rates["loader"], "in_memory": rates["memory"]},
        "loader_alone_samples_per_s": loader_only,
        "ratio_best_loader_over_best_memory": ratio,
        "pass": ratio >= args.threshold,
    }
    print(json.dumps(report, indent=2))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
