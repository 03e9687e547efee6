"""Where the sampler's model comes from: a VidRD model folder (diffusers layout, e.g. `vidrd-model train`'s
final output), a `vidrd-model train` checkpoint (checkpoint-NNNNNNNN/ with only the trained component, applied
onto its base model), or the authors' release (ModelT2V.pth + Stable Diffusion 2.1-base folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ..checkpoint_layout import TRAIN_CONFIG, is_training_checkpoint, recorded_base_model, trained_component_folders

__all__ = ["is_training_checkpoint", "load_components", "load_training_checkpoint"]


def _checkpoint_base(path: Path, base_model: Optional[str]) -> str:
    base = base_model or recorded_base_model(path)
    if base:
        return base
    raise ValueError(
        f"{path} is a training checkpoint holding only the trained component; its base model is not recorded "
        f"in {TRAIN_CONFIG}: pass --base-model <VidRD model folder>"
    )


def load_training_checkpoint(path: str | Path, base_model: Optional[str], device, dtype, use_ema: bool = True):
    """A base model (VidRD folder, or SD 2.x inflated) with the checkpoint's trained UNet or VAE (its EMA weights
    when saved and `use_ema`)."""
    from ..models import TemporalAutoencoderKL, VidRDUNet3DConditionModel
    from ..sd_inflate import load_any_model

    path = Path(path)
    found = trained_component_folders(path, use_ema)
    if not found:
        raise ValueError(f"training checkpoint {path} holds neither unet/ nor vae/ (nor their _ema/ copies)")
    components = load_any_model(_checkpoint_base(path, base_model), device=device, dtype=dtype, what="base model")
    classes = {"unet": VidRDUNet3DConditionModel, "vae": TemporalAutoencoderKL}
    for name, folder in found.items():
        setattr(components, name, classes[name].from_pretrained(folder, torch_dtype=dtype).to(device).eval())
    return components, [folder.name for folder in found.values()]


def load_components(
    model: Optional[str] = None,
    released_checkpoint: Optional[str] = None,
    sd_base: Optional[str] = None,
    vae_finetuned: Optional[str] = None,
    base_model: Optional[str] = None,
    use_ema: bool = True,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[object, dict]:
    """(components, a description of what was loaded, for the output's metadata)."""
    from ..pipeline_io import load_released

    if released_checkpoint:
        if model:
            raise ValueError("give either --model or --released-checkpoint (with --sd-base), not both")
        if not sd_base:
            raise ValueError(
                "--released-checkpoint (ModelT2V.pth) needs --sd-base: the Stable Diffusion 2.1-base folder in "
                "diffusers layout (it gives the configuration, tokenizer and scheduler)"
            )
        comps = load_released(released_checkpoint, sd_base, vae_finetuned, device=device, dtype=dtype)
        return comps, {"kind": "released", "checkpoint": str(released_checkpoint), "sd_base": str(sd_base),
                       "vae_finetuned": str(vae_finetuned) if vae_finetuned else None}
    if not model:
        raise ValueError(
            "no model: pass --model <VidRD model folder or training checkpoint>, or --released-checkpoint "
            "ModelT2V.pth --sd-base <stable-diffusion-2-1-base folder> [--vae-finetuned vae_finetuned/]"
        )
    if is_training_checkpoint(model):
        comps, replaced = load_training_checkpoint(model, base_model, device, dtype, use_ema)
        return comps, {"kind": "training_checkpoint", "checkpoint": str(model), "replaced": replaced,
                       "base_model": _checkpoint_base(Path(model), base_model)}
    from ..sd_inflate import load_any_model

    return load_any_model(model, device=device, dtype=dtype), {"kind": "model_folder", "path": str(model)}
