"""Forward+backward time and memory of the VidRD UNet against diffusers' own UNet3DConditionModel at the
same size (channels, layers, heads, frames, resolution), with and without gradient checkpointing.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_unet.py [--device cpu] [--frames 8] [--size 16]

All four configurations (two models × checkpointing off/on) live in one process and their timed steps
are interleaved, so that load from other processes on the machine falls on all of them alike.
Reported per configuration: median seconds of one forward+backward step; peak tensor memory of a step
above the weights (GPU: the CUDA allocator's peak; CPU, which has no peak counter: the PyTorch
profiler's running sum of allocations minus frees; gradients included); and the activation bytes kept
for backward (weights excluded), which gradient checkpointing trades for recomputation.

diffusers' UNet3DConditionModel refuses ``enable_gradient_checkpointing`` (its 3-D blocks ignore the
flag), so for it each down/mid/up block is wrapped in ``torch.utils.checkpoint`` instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def build(kind: str, args):
    common = dict(
        sample_size=args.size, in_channels=4, out_channels=4, block_out_channels=tuple(args.channels),
        layers_per_block=args.layers, norm_num_groups=32, cross_attention_dim=args.cross_dim,
        down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
        up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
        attention_head_dim=args.heads,  # both read it as the number of heads, as SD 2.x configs do
    )
    if kind == "vidrd":
        from vidrd_model.models import VidRDUNet3DConditionModel

        return VidRDUNet3DConditionModel(use_linear_projection=True, **common)
    from diffusers import UNet3DConditionModel

    return UNet3DConditionModel(**common)


def enable_checkpointing(kind: str, model) -> None:
    if kind == "vidrd":
        model.enable_gradient_checkpointing()
        return
    import torch.utils.checkpoint

    def checkpointed(forward):
        return lambda *a, **k: torch.utils.checkpoint.checkpoint(forward, *a, use_reentrant=False, **k)

    for block in [*model.down_blocks, model.mid_block, *model.up_blocks]:
        block.forward = checkpointed(block.forward)


class Case:
    def __init__(self, kind, checkpointing, args, device, dtype):
        torch.manual_seed(0)
        self.kind, self.checkpointing = kind, checkpointing
        self.model = build(kind, args).train()
        if device.type != "cpu" or dtype != torch.float32:
            self.model.to(device=device, dtype=dtype)
        if checkpointing:
            enable_checkpointing(kind, self.model)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.inputs = (
            torch.randn(args.batch, 4, args.frames, args.size, args.size, device=device, dtype=dtype),
            torch.full((args.batch,), 500, device=device),
            torch.randn(args.batch, 77, args.cross_dim, device=device, dtype=dtype),
        )
        self.device, self.times = device, []

    def step(self):
        sample, timestep, text = self.inputs
        out = self.model(sample, timestep, encoder_hidden_states=text).sample
        out.float().square().mean().backward()
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def timed_step(self):
        self.model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        self.step()
        self.times.append(time.perf_counter() - t0)

    def measure_memory(self):
        """(peak tensor bytes above the weights, activation bytes saved for backward)."""
        self.model.zero_grad(set_to_none=True)
        weights = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        saved = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in weights:
                saved[ptr] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            if self.device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                self.step()
                peak = torch.cuda.max_memory_allocated() - base
            else:
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                    self.step()
                live = peak = 0
                for event in sorted(prof.events(), key=lambda e: e.time_range.start):
                    live += event.self_cpu_memory_usage
                    peak = max(peak, live)
        return peak, sum(saved.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=16, help="latent height and width")
    parser.add_argument("--channels", type=lambda s: [int(x) for x in s.split(",")], default=[64, 128, 256, 256])
    # one head count for every block: diffusers' UNet3DConditionModel only takes a single int
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cross-dim", type=int, default=256)
    parser.add_argument("--iters", type=int, default=3, help="timed steps per configuration (after one warm-up)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    cases = [Case(kind, ck, args, device, dtype) for ck in (False, True) for kind in ("vidrd", "diffusers")]
    memory = {}
    for case in cases:  # the memory step doubles as warm-up
        memory[(case.kind, case.checkpointing)] = case.measure_memory()
    for _ in range(args.iters):
        for case in cases:
            case.timed_step()

    rows = []
    for case in cases:
        peak, saved = memory[(case.kind, case.checkpointing)]
        rows.append(dict(model=case.kind, checkpointing=case.checkpointing, params=case.params,
                         seconds=statistics.median(case.times), times=case.times,
                         peak_mib=peak / 2**20, saved_mib=saved / 2**20))

    print(f"\nUNet forward+backward on {args.device} {args.dtype}: batch {args.batch}, {args.frames} frames, "
          f"{args.size}x{args.size} latents, channels {args.channels}, {args.heads} heads, {args.layers} layers/block, "
          f"median of {args.iters} interleaved steps, {torch.get_num_threads()} threads\n")
    print("| model | grad ckpt | params (M) | s / step | peak tensor mem (MiB) | activations saved for backward (MiB) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {'on' if r['checkpointing'] else 'off'} | {r['params'] / 1e6:.1f} | "
              f"{r['seconds']:.3f} | {r['peak_mib']:.0f} | {r['saved_mib']:.0f} |")
    by = {(r["model"], r["checkpointing"]): r for r in rows}
    print()
    for ck in (False, True):
        v, d = by[("vidrd", ck)], by[("diffusers", ck)]
        print(f"grad ckpt {'on ' if ck else 'off'}: VidRD / diffusers = time {v['seconds'] / d['seconds']:.2f}x, "
              f"peak mem {v['peak_mib'] / d['peak_mib']:.2f}x, saved activations {v['saved_mib'] / d['saved_mib']:.2f}x")
    for kind in ("vidrd", "diffusers"):
        off, on = by[(kind, False)], by[(kind, True)]
        print(f"{kind}: checkpointing on / off = time {on['seconds'] / off['seconds']:.2f}x, "
              f"peak mem {on['peak_mib'] / off['peak_mib']:.2f}x, saved activations {on['saved_mib'] / off['saved_mib']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
