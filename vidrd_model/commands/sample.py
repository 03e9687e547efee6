"""`vidrd-model sample`: long videos with VidRD's iterative sampler (FNR · PNS · DSG), written as mp4."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

DTYPES = ("float32", "float16", "bfloat16")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sample",
        help="generate long videos with the iterative sampler",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_arguments(p)
    t = p.add_argument_group("prompts")
    t.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    t.add_argument("--prompt-file", help="a text file, one prompt per line (blank lines and #comments skipped)")
    t.add_argument("--negative-prompt", default="watermark", help="what guidance steers away from (the released VidRD's)")

    add_sampler_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--output", help="output .mp4 (a single prompt only)")
    o.add_argument("--output-dir", default="out/samples", help="where videos go: NNNN_<prompt>.mp4")
    o.add_argument("--fps", type=float, default=8.0, help="frame rate written to the mp4")
    add_decode_arguments(o)
    o.add_argument("--gif", action="store_true", help="also write a GIF")
    o.add_argument("--grid", action="store_true", help="also write a frame-grid PNG (a row per clip)")
    o.add_argument("--no-sidecar", action="store_true", help="no <video>.json next to the mp4 (the settings "
                   "are in the mp4's comment tag anyway)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")

    add_runtime_arguments(p)
    p.set_defaults(func=run)
    return p


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("model (one of: --model, or --released-checkpoint with --sd-base)")
    m.add_argument("--model", help="VidRD model folder (diffusers layout, hub id in the local cache) or a "
                   "`vidrd-model train` checkpoint-NNNNNNNN folder")
    m.add_argument("--base-model", help="base model folder for a training checkpoint (default: the one recorded "
                   "in its train_config.yaml)")
    m.add_argument("--no-ema", action="store_true", help="use a training checkpoint's raw weights, not its EMA")
    m.add_argument("--released-checkpoint", metavar="ModelT2V.pth", help="the authors' released checkpoint")
    m.add_argument("--sd-base", help="Stable Diffusion 2.1-base folder (diffusers layout), with --released-checkpoint")
    m.add_argument("--vae-finetuned", help="the released temporal VAE folder (vae_finetuned/)")


def add_sampler_arguments(p: argparse.ArgumentParser, num_clips: int = 4) -> None:
    from vidrd_model.sampling.schedulers import SCHEDULERS

    s = p.add_argument_group("iterative sampler (defaults: the released VidRD's)")
    s.add_argument("--num-clips", type=int, default=num_clips, help="K: clips per video")
    s.add_argument("--num-frames", type=int, default=8, help="N: frames per clip")
    s.add_argument("--overlap-frames", type=int, default=4, help="M: frames shared by consecutive clips")
    s.add_argument("--alpha", type=float, default=4.0, help="PNS noise-recycle strength α")
    s.add_argument("--gamma", type=float, default=0.4, help="DSG staged-guidance strength γ")
    s.add_argument("--steps", type=int, default=50, help="T: denoising steps per clip")
    s.add_argument("--guidance-scale", type=float, default=10.0, help="classifier-free guidance")
    s.add_argument("--scheduler", default="ddim", choices=list(SCHEDULERS), help="diffusers scheduler (the paper: DDIM)")
    s.add_argument("--eta", type=float, default=0.0, help="DDIM η")
    s.add_argument("--no-fnr", action="store_true", help="turn frame-level noise reversion off")
    s.add_argument("--no-pns", action="store_true", help="turn past-dependent noise sampling off")
    s.add_argument("--no-dsg", action="store_true", help="turn denoising with staged guidance off")
    s.add_argument("--height", type=int, help="pixels (default: UNet sample size × VAE factor)")
    s.add_argument("--width", type=int, help="pixels (default: UNet sample size × VAE factor)")
    s.add_argument("--seed", type=int, default=0, help="prompt i uses seed + i")


def add_decode_arguments(o) -> None:
    from vidrd_model.sampling.decode import DECODE_MODES

    o.add_argument("--decode", default="temporal", choices=DECODE_MODES,
                   help="temporal: the VAE decodes each clip with num_frames=N; per-frame: num_frames=1, the "
                        "released pipeline's behaviour (it omitted num_frames)")
    o.add_argument("--drop-overlap", action="store_true",
                   help="drop the M overlapped frames of clips k>=1: K·N − (K−1)·M frames instead of K·N")


def add_runtime_arguments(p: argparse.ArgumentParser) -> None:
    r = p.add_argument_group("runtime")
    r.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    r.add_argument("--dtype", default="float32", choices=DTYPES, help="weights and activations dtype")
    r.add_argument("--no-tf32", action="store_true",
                   help="keep convolutions and matmuls in full float32 on CUDA (PyTorch lets cuDNN use TF32 by "
                        "default, which moves 10-step latents by ~1e-1 on an H100; off, they match the CPU to ~2e-4)")


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def apply_precision(args) -> None:
    """--no-tf32: full-precision float32 convolutions and matmuls on CUDA."""
    if getattr(args, "no_tf32", False):
        import torch

        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def read_prompts(prompts: list[str], prompt_file: str | None) -> list[str]:
    out = list(prompts)
    if prompt_file:
        for line in Path(prompt_file).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    if not out:
        raise ValueError("no prompt: pass --prompt TEXT (repeatable) or --prompt-file FILE (one per line)")
    return out


def slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")[:limit] or "video"


def output_paths(prompts: list[str], output: str | None, output_dir: str) -> list[Path]:
    if output:
        if len(prompts) != 1:
            raise ValueError(f"--output names one file but there are {len(prompts)} prompts; use --output-dir")
        return [Path(output)]
    return [Path(output_dir) / f"{i:04d}_{slug(p)}.mp4" for i, p in enumerate(prompts)]


def settings_from_args(args):
    from vidrd_model.sampling.loop import LongVideoSettings

    return LongVideoSettings(
        num_clips=args.num_clips,
        num_frames=args.num_frames,
        overlap_frames=args.overlap_frames,
        noise_recycle_alpha=args.alpha,
        denoise_guidance_gamma=args.gamma,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        eta=args.eta,
        frame_noise_reversion=not args.no_fnr,
        past_dependent_noise=not args.no_pns,
        staged_guidance=not args.no_dsg,
    )


def run(args) -> int:
    import torch

    import vidrd_model
    from vidrd_model.pipeline_vidrd import VidRDPipeline
    from vidrd_model.sampling.model_source import load_components
    from vidrd_model.sampling.schedulers import make_scheduler
    from vidrd_model.sampling.writer import VideoWriter

    try:
        prompts = read_prompts(args.prompt, args.prompt_file)
        paths = output_paths(prompts, args.output, args.output_dir)
        settings = settings_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"vidrd-model sample: {exc}", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    args.device = resolve_device(args.device)
    apply_precision(args)
    try:
        components, source = load_components(
            model=args.model, released_checkpoint=args.released_checkpoint, sd_base=args.sd_base,
            vae_finetuned=args.vae_finetuned, base_model=args.base_model, use_ema=not args.no_ema,
            device=args.device, dtype=dtype,
        )
    except (ValueError, FileNotFoundError) as exc:  # missing / incomplete model: say what and where, no traceback
        print(f"vidrd-model sample: {exc}", file=sys.stderr)
        return 2
    pipe = VidRDPipeline.from_components(components)
    pipe.scheduler = make_scheduler(args.scheduler, components.scheduler.config)  # copied afresh for every video
    for i, (prompt, path) in enumerate(zip(prompts, paths)):
        seed = args.seed + i
        scheduler = pipe.scheduler
        generator = torch.Generator(device=args.device).manual_seed(seed)
        metadata = {
            "prompt": prompt,
            "negative_prompt": args.negative_prompt,
            "seed": seed,
            "sampler": settings.to_dict(),
            "scheduler": {"name": args.scheduler, "class": type(scheduler).__name__,
                          "config": dict(scheduler.config)},
            "decode": args.decode,
            "drop_overlap": args.drop_overlap,
            "fps": args.fps,
            "device": str(args.device),
            "dtype": args.dtype,
            "tf32": not args.no_tf32 if str(args.device).startswith("cuda") else None,
            "model": source,
            "vidrd_version": getattr(vidrd_model, "__version__", None),
        }
        writer = VideoWriter(
            path, fps=args.fps, metadata=metadata, sidecar=not args.no_sidecar,
            gif_path=path.with_suffix(".gif") if args.gif else None,
            grid_path=path.with_name(path.stem + "_grid.png") if args.grid else None,
        )
        with writer:
            info = pipe(
                prompt, settings=settings, negative_prompt=args.negative_prompt, height=args.height,
                width=args.width, generator=generator, decode_mode=args.decode, drop_overlap=args.drop_overlap,
                output_type=None, on_clip=writer.write_clip, progress=not args.no_progress,
            ).info[0]
            writer.metadata.update(height=info["height"], width=info["width"], frames=info["frames"])
        print(json.dumps({"video": str(path), "frames": info["frames"], "size": [info["width"], info["height"]]}))
    return 0
