"""`vidrd-model init`: a VidRD model folder inflated from Stable Diffusion 2.x (the paper's starting point)."""

from __future__ import annotations

import argparse
import json
import sys

DTYPES = ("float32", "float16", "bfloat16")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "init", help="inflate Stable Diffusion 2.x into a VidRD model folder (fresh temporal layers)",
        description="UNet2D -> VidRD UNet and AutoencoderKL -> temporal VAE (every 2-D weight copied, temporal "
                    "layers at their identity initialisation); text encoder, tokenizer and scheduler copied. "
                    "A hub id is looked up in the local Hugging Face cache only: nothing is downloaded.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--from", dest="source", required=True, metavar="SD_DIR_OR_HUB_ID",
                   help="an SD 2.x folder in diffusers layout, or a hub id already in the local cache "
                        "(e.g. stabilityai/stable-diffusion-2-1-base)")
    p.add_argument("--output", required=True, help="the VidRD model folder to write")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="dtype of the saved weights")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import torch

    from vidrd_model.pipeline_io import ModelFolderError, save_vidrd
    from vidrd_model.sd_inflate import inflate_sd2

    try:
        components = inflate_sd2(args.source, dtype=getattr(torch, args.dtype))
    except (ModelFolderError, FileNotFoundError, ValueError) as exc:
        print(f"vidrd-model init: {exc}", file=sys.stderr)
        return 2
    out = save_vidrd(components, args.output)
    temporal = sum(p.numel() for _, p in components.unet.temporal_parameters())
    total = sum(p.numel() for p in components.unet.parameters())
    print(json.dumps({"model": str(out), "from": args.source, "unet_parameters": total,
                      "unet_temporal_parameters": temporal, "dtype": args.dtype}))
    return 0
