"""Full-size model numbers on a GPU: training-step time and peak memory of the SD 2.1-base-size VidRD UNet against
diffusers' UNet3DConditionModel at the same size, and the iterative sampler's seconds per clip.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_gpu_model.py --device cuda [--json gpu.json]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_gpu_model.py --device cpu --tiny     # smoke test, CPU

UNet part: 256x256 pixels (32x32 latents) x 16 frames, bf16 weights and activations, batch 1 / 2 / 4, gradient
checkpointing off / on; one forward + backward (MSE on the output) per step, the median of `--iters` timed steps
after one warm-up; peak memory = `torch.cuda.max_memory_allocated` during a step (weights, gradients and
activations) and the part above the weights. Sizes: SD 2.1-base's UNet (channels 320/640/1280/1280, 2 layers
per block, cross-attention 1024) for both models; heads: VidRD 5/10/20/20 of 64 dims (SD 2.1's), diffusers'
UNet3DConditionModel takes one head count for all blocks (its transformer_in needs an int) and gets 64, the
value of its released text-to-video config (the same projection FLOPs, other head shapes). A configuration that
runs out of memory is reported as OOM, not dropped.

Sampler part: the iterative sampler (FNR + PNS + DSG, classifier-free guidance: two UNet passes per step)
with 50 DDIM steps per clip, N = 8 frames, M = 4 overlapped (the released settings), 256x256, bf16, each clip
decoded by the SD-size temporal VAE; seconds per clip = wall time from one clip's frames decoded to the next's,
median over `--clips` clips (clip 0 excluded: it has no guides). Weights are random (speed does not depend on
them); the text embeddings are random tensors of SD 2.1's shape (1, 77, 1024).

Without CUDA, `--device cuda` prints why nothing was measured and exits 0 (a skip, not a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FULL = dict(channels=[320, 640, 1280, 1280], heads=[5, 10, 20, 20], diffusers_heads=64, layers=2, cross_dim=1024, size=32, frames=16,
            batches=[1, 2, 4], vae=None, sampler_size=256, sampler_frames=8, sampler_overlap=4, steps=50)
TINY = dict(channels=[32, 32, 64, 64], heads=[2, 2, 4, 4], diffusers_heads=4, layers=1, cross_dim=32, size=8,
            frames=4, batches=[1], vae=dict(block_out_channels=[32, 32, 32, 32], layers_per_block=1), sampler_size=64,
            sampler_frames=4, sampler_overlap=2, steps=2)


def unet_rows(shape: dict, device, dtype, iters: int) -> list[dict]:
    import torch

    from bench_unet import Case

    rows = []
    for batch in shape["batches"]:
        for ckpt in (False, True):
            for kind in ("vidrd", "diffusers"):
                args = SimpleNamespace(size=shape["size"], channels=shape["channels"], layers=shape["layers"],
                                       cross_dim=shape["cross_dim"], batch=batch,
                                       heads=shape["heads"] if kind == "vidrd" else shape["diffusers_heads"],
                                       frames=shape["frames"])
                row = {"model": kind, "batch": batch, "grad_ckpt": ckpt}
                case = None
                try:
                    case = Case(kind, ckpt, args, device, dtype)
                    weights = sum(p.numel() * p.element_size() for p in case.model.parameters())
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    peak_above, _ = case.measure_memory()
                    for _ in range(iters):
                        case.timed_step()
                    row.update(params_m=case.params / 1e6, s_per_step=statistics.median(case.times),
                               peak_gib=(torch.cuda.max_memory_allocated() / 2**30) if device.type == "cuda" else None,
                               peak_above_weights_gib=peak_above / 2**30, weights_gib=weights / 2**30)
                except torch.OutOfMemoryError:
                    row.update(error="OOM")
                finally:
                    del case
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def sampler_row(shape: dict, device, dtype, clips: int) -> dict:
    import torch
    from diffusers import DDIMScheduler

    from vidrd_model.models import SD21_BASE_VAE_CONFIG, TemporalAutoencoderKL, VidRDUNet3DConditionModel
    from vidrd_model.models.sd21_configs import SD21_BASE_UNET2D_CONFIG
    from vidrd_model.sampling.decode import decode_clip
    from vidrd_model.sampling.loop import LongVideoSettings, sample_long_video
    from vidrd_model.sampling.schedulers import SD21_BASE_SCHEDULER_CONFIG

    torch.manual_seed(0)
    unet2d = dict(SD21_BASE_UNET2D_CONFIG, block_out_channels=shape["channels"], attention_head_dim=shape["heads"],
                  layers_per_block=shape["layers"], cross_attention_dim=shape["cross_dim"],
                  sample_size=shape["sampler_size"] // 8)
    unet = VidRDUNet3DConditionModel.from_config(VidRDUNet3DConditionModel.config_from_unet2d(unet2d))
    vae = TemporalAutoencoderKL.from_config(dict(SD21_BASE_VAE_CONFIG, **(shape["vae"] or {})))
    unet.to(device=device, dtype=dtype).eval()
    vae.to(device=device, dtype=dtype).eval()
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(1, 77, shape["cross_dim"], generator=g).to(device, dtype)
    uncond = torch.randn(1, 77, shape["cross_dim"], generator=g).to(device, dtype)
    settings = LongVideoSettings(num_clips=clips, num_frames=shape["sampler_frames"],
                                 overlap_frames=shape["sampler_overlap"], num_inference_steps=shape["steps"])
    latent = shape["sampler_size"] // 8
    stamps = []
    with torch.no_grad():
        t0 = time.perf_counter()
        for clip in sample_long_video(unet, DDIMScheduler(**SD21_BASE_SCHEDULER_CONFIG), cond, uncond, settings,
                                      (1, 4, settings.num_frames, latent, latent),
                                      generator=torch.Generator(device).manual_seed(0)):
            decode_clip(vae, clip.latents)
            if device.type == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())
    per_clip = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
    return {"clips": clips, "steps": shape["steps"], "frames": settings.num_frames, "overlap": settings.overlap_frames,
            "size": shape["sampler_size"], "s_per_clip": statistics.median(per_clip[1:] or per_clip),
            "clip_seconds": per_clip}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a tiny configuration (the CPU smoke test)")
    p.add_argument("--iters", type=int, default=5, help="timed UNet steps per configuration (after one warm-up)")
    p.add_argument("--clips", type=int, default=4, help="clips sampled (the first is not timed)")
    p.add_argument("--dtype", choices=["bf16", "fp32"], help="default: bf16 on CUDA (the measured setting), fp32 on "
                   "CPU (whose bf16 kernels are too slow for a smoke test)")
    p.add_argument("--skip-sampler", action="store_true")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu_model: skipped: --device cuda but CUDA is not available on this machine; nothing was "
              "measured. Run it where a GPU is lent (or --device cpu --tiny for the smoke test).")
        return 0
    device = torch.device(args.device)
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    shape = TINY if args.tiny else FULL
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "torch": torch.__version__, "dtype": dtype_name, "config": "tiny" if args.tiny else "sd21-base"}
    print(json.dumps(env), flush=True)
    result = {"env": env, "unet": unet_rows(shape, device, dtype, args.iters)}
    if not args.skip_sampler:
        result["sampler"] = sampler_row(shape, device, dtype, args.clips)
        print(json.dumps({k: v for k, v in result["sampler"].items() if k != "clip_seconds"}), flush=True)

    print(f"\n| model | batch | grad ckpt | s / step | peak GiB | above weights GiB |\n|---|---:|---|---:|---:|---:|")
    for r in result["unet"]:
        if "error" in r:
            print(f"| {r['model']} | {r['batch']} | {'on' if r['grad_ckpt'] else 'off'} | {r['error']} | | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        print(f"| {r['model']} | {r['batch']} | {'on' if r['grad_ckpt'] else 'off'} | {r['s_per_step']:.3f} | "
              f"{peak} | {r['peak_above_weights_gib']:.2f} |")
    if "sampler" in result:
        s = result["sampler"]
        print(f"\nsampler: {s['s_per_clip']:.2f} s per clip ({s['steps']} DDIM steps, {s['frames']} frames, "
              f"{s['size']}x{s['size']}, CFG, temporal VAE decode)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
