"""`vidrd-model train`: train the VidRD UNet on shards from `vidrd-data build`."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from vidrd_model.training.cli_args import add_common_arguments
    p = subparsers.add_parser(
        "train", help="train the VidRD UNet (temporal layers + spatial attention) on shards",
        description="Train the VidRD UNet on WebDataset shards. One process by default (CPU or one GPU); "
                    "--num-workers N --use-gpu runs data-parallel on Ray Train. Defaults: vidrd_model/configs/train_default.yaml.")
    add_common_arguments(p)
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction"],
                   help="what the UNet predicts (config diffusion.prediction_type; the paper: epsilon)")
    p.add_argument("--snr-gamma", type=float, help="min-SNR loss weighting, e.g. 5")
    p.add_argument("--noise-offset", type=float, help="offset noise strength, e.g. 0.05 (one offset per video and channel)")
    p.add_argument("--text-dropout", type=float, help="share of captions dropped for classifier-free guidance (default 0.1)")
    p.add_argument("--validation-every", type=int, help="render validation videos every N steps (needs the sampler)")
    p.add_argument("--validation-prompt", action="append", help="a validation prompt (repeatable; replaces the defaults)")
    p.set_defaults(func=run)


def run(args) -> int:
    from vidrd_model.training.cli_args import config_from_args, launch
    extra = {}
    for dest, path in {"prediction_type": "diffusion.prediction_type", "snr_gamma": "diffusion.snr_gamma",
                       "noise_offset": "diffusion.noise_offset", "text_dropout": "diffusion.text_dropout",
                       "validation_every": "run.validation_every", "validation_prompt": "run.validation_prompts"}.items():
        if getattr(args, dest, None) is not None:
            extra[path] = getattr(args, dest)
    return launch("unet", args, config_from_args(args, "train_default.yaml", extra))
