"""`vidrd-model train-vae`: fine-tune the temporal layers of the VAE decoder on clips from the shards."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from vidrd_model.training.cli_args import add_common_arguments
    p = subparsers.add_parser(
        "train-vae", help="fine-tune the VAE decoder's temporal layers on shards",
        description="Fine-tune only the temporal convolutions of the VAE decoder to reconstruct clips "
                    "(L1 + optional LPIPS + temporal-difference L1). Writes OUTPUT/model/vae for the sampler. "
                    "Defaults: vidrd_model/configs/train_vae_default.yaml.")
    add_common_arguments(p)
    p.add_argument("--lpips-vgg", help="torchvision VGG16 weights file: enables the LPIPS term")
    p.add_argument("--lpips-linear", help="LPIPS linear-layer weights (lpips' vgg.pth); default uniform")
    p.add_argument("--temporal-weight", type=float, help="weight of the temporal-difference L1 term")
    p.set_defaults(func=run)


def run(args) -> int:
    from vidrd_model.training.cli_args import config_from_args, launch
    extra = {}
    for dest, path in {"lpips_vgg": "vae_loss.lpips_vgg_path", "lpips_linear": "vae_loss.lpips_linear_path",
                       "temporal_weight": "vae_loss.temporal_weight"}.items():
        if getattr(args, dest, None) is not None:
            extra[path] = getattr(args, dest)
    return launch("vae", args, config_from_args(args, "train_vae_default.yaml", extra))
