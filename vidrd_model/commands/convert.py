"""`vidrd-model convert`: the authors' released VidRD weights (ModelT2V.pth) as a VidRD model folder."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "convert", help="write the released ModelT2V.pth (+ vae_finetuned/) as a VidRD model folder",
        description="Reads ModelT2V.pth with torch.load(weights_only=True) (tensors only; nothing is unpickled "
                    "that could run code), loads it strictly into the VidRD UNet and the text encoder, and saves "
                    "a folder that `sample`, `train --pretrained` and DiffusionPipeline.from_pretrained open.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--released", required=True, metavar="ModelT2V.pth", help="the released checkpoint")
    p.add_argument("--vae", metavar="vae_finetuned", help="the released temporal VAE folder (default: SD's VAE "
                   "with identity temporal layers)")
    p.add_argument("--sd-base", required=True, help="Stable Diffusion 2.1-base in diffusers layout (local folder "
                   "or a hub id in the local cache): configuration, tokenizer, scheduler")
    p.add_argument("--output", required=True, help="the VidRD model folder to write")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from vidrd_model.models import CheckpointMismatchError
    from vidrd_model.pipeline_io import ModelFolderError, load_released, save_vidrd

    try:
        components = load_released(args.released, args.sd_base, args.vae)
    except (ModelFolderError, FileNotFoundError, CheckpointMismatchError, RuntimeError) as exc:
        print(f"vidrd-model convert: {exc}", file=sys.stderr)
        return 2
    out = save_vidrd(components, args.output)
    print(json.dumps({"model": str(out), "released": args.released, "vae": args.vae or "sd-base (identity temporal)",
                      "sd_base": args.sd_base}))
    return 0
