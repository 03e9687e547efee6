"""Forward+backward time and memory of the VidRD UNet against diffusers' own UNet3DConditionModel at the
same size (channels, layers, heads, frames, resolution), with and without gradient checkpointing.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_unet.py [--device cpu] [--frames 8] [--size 32]

Each configuration runs in a fresh process so that peak memory is its own. Reported per configuration:
median seconds of one forward+backward step, the peak resident-memory growth during the first step
(CPU) or peak allocated CUDA memory (GPU), and the bytes of tensors kept for backward (activations
that gradient checkpointing trades for recomputation).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time


def _build(kind: str, channels, heads, layers, cross_dim):
    common = dict(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=tuple(channels),
        layers_per_block=layers, norm_num_groups=32, cross_attention_dim=cross_dim,
        down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
        up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
    )
    if kind == "vidrd":
        from vidrd_model.models import VidRDUNet3DConditionModel

        return VidRDUNet3DConditionModel(attention_head_dim=heads, use_linear_projection=True, **common)
    from diffusers import UNet3DConditionModel

    # diffusers' UNet3D also reads attention_head_dim as the number of heads (as SD 2.x configs do)
    return UNet3DConditionModel(attention_head_dim=heads, **common)


def _checkpointed(forward):
    import torch.utils.checkpoint

    def run(*args, **kwargs):
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _measure(kind, checkpointing, args, queue):
    try:
        queue.put(_measure_one(kind, checkpointing, args))
    except BaseException as err:  # report instead of leaving the parent waiting
        queue.put({"error": f"{kind} (checkpointing={checkpointing}): {type(err).__name__}: {err}"})
        raise


def _measure_one(kind, checkpointing, args):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    model = _build(kind, args.channels, args.heads, args.layers, args.cross_dim).train()
    if device.type != "cpu" or dtype != torch.float32:
        model.to(device=device, dtype=dtype)
    if checkpointing and kind == "vidrd":
        model.enable_gradient_checkpointing()
    elif checkpointing:
        # diffusers' UNet3DConditionModel refuses enable_gradient_checkpointing (its 3-D blocks ignore the
        # flag), so each of its down/mid/up blocks is wrapped in torch.utils.checkpoint instead
        for block in [*model.down_blocks, model.mid_block, *model.up_blocks]:
            block.forward = _checkpointed(block.forward)
    n_params = sum(p.numel() for p in model.parameters())
    sample = torch.randn(args.batch, 4, args.frames, args.size, args.size, device=device, dtype=dtype)
    text = torch.randn(args.batch, 77, args.cross_dim, device=device, dtype=dtype)
    timestep = torch.tensor([500] * args.batch, device=device)

    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    def step(count_saved=False):
        model.zero_grad(set_to_none=True)
        if count_saved:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = model(sample, timestep, encoder_hidden_states=text).sample
        else:
            out = model(sample, timestep, encoder_hidden_states=text).sample
        out.float().square().mean().backward()

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    step(count_saved=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        # ru_maxrss is in KiB on Linux; the process is fresh, so its peak is this step's
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return dict(model=kind, checkpointing=checkpointing, params=n_params, seconds=statistics.median(times),
                peak_mib=peak / 2**20, saved_mib=sum(saved.values()) / 2**20)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32, help="latent height and width")
    parser.add_argument("--channels", type=lambda s: [int(x) for x in s.split(",")], default=[64, 128, 256, 256])
    # one head count for every block: diffusers' UNet3DConditionModel only takes a single int
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cross-dim", type=int, default=256)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)

    ctx = mp.get_context("spawn")
    rows = []
    for checkpointing in (False, True):
        for kind in ("vidrd", "diffusers"):
            queue = ctx.Queue()
            proc = ctx.Process(target=_measure, args=(kind, checkpointing, args, queue))
            proc.start()
            row = queue.get()
            proc.join()
            if "error" in row:
                raise SystemExit(f"benchmark failed: {row['error']}")
            rows.append(row)
            print(f"done: {row}", flush=True)

    print("\n(diffusers with checkpointing: its blocks wrapped in torch.utils.checkpoint, see _measure_one)")
    print(f"\nUNet forward+backward, {args.device} {args.dtype}, batch {args.batch}, {args.frames} frames, "
          f"{args.size}x{args.size} latents, channels {args.channels}, heads {args.heads}, "
          f"{args.layers} layers/block, {args.iters} timed steps (median), {args.threads} threads\n")
    print("| model | grad ckpt | params (M) | s / step | peak mem growth (MiB) | saved for backward (MiB) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {'on' if r['checkpointing'] else 'off'} | {r['params'] / 1e6:.1f} | "
              f"{r['seconds']:.3f} | {r['peak_mib']:.0f} | {r['saved_mib']:.0f} |")
    by = {(r["model"], r["checkpointing"]): r for r in rows}
    print()
    for ck in (False, True):
        v, d = by[("vidrd", ck)], by[("diffusers", ck)]
        print(f"grad ckpt {'on ' if ck else 'off'}: VidRD / diffusers  time {v['seconds'] / d['seconds']:.2f}x, "
              f"peak mem {v['peak_mib'] / max(d['peak_mib'], 1e-9):.2f}x, saved {v['saved_mib'] / d['saved_mib']:.2f}x")
    for kind in ("vidrd", "diffusers"):
        off, on = by[(kind, False)], by[(kind, True)]
        print(f"{kind}: checkpointing on / off  time {on['seconds'] / off['seconds']:.2f}x, "
              f"peak mem {on['peak_mib'] / max(off['peak_mib'], 1e-9):.2f}x, saved {on['saved_mib'] / off['saved_mib']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
