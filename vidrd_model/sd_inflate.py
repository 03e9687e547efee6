"""Stable Diffusion 2.x -> VidRD: where the paper starts.

An SD 2.x folder in diffusers layout (``unet/`` UNet2DConditionModel, ``vae/`` AutoencoderKL, ``text_encoder/``,
``tokenizer/``, ``scheduler/``) becomes VidRD components: the UNet and the VAE are inflated (every 2-D weight
copied one to one, the temporal layers fresh: identity temporal convs, zero temporal-attention output, so the
inflated model first behaves as SD frame by frame), the text encoder and tokenizer are taken as they are and
the scheduler's configuration is kept (as a DDIM scheduler, the sampler's default).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from .pipeline_io import ModelFolderError, VidRDComponents, load_vidrd, resolve_model_folder

logger = logging.getLogger(__name__)

SD_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def _class_of(folder: Path, config_name: str = "config.json") -> str | None:
    try:
        return json.loads((folder / config_name).read_text()).get("_class_name")
    except (OSError, ValueError):
        return None


def is_sd2_folder(path: str | os.PathLike) -> bool:
    """A Stable Diffusion folder (2-D UNet) rather than a VidRD one (its unet/ is a VidRD 3-D UNet)."""
    root = Path(path)
    return root.is_dir() and _class_of(root / "unet") == "UNet2DConditionModel"


def resolve_sd2_folder(path_or_id: str | os.PathLike) -> Path:
    """A local SD 2.x folder, or a hub id found in the local Hugging Face cache only (never downloaded)."""
    root = resolve_model_folder(path_or_id, what="Stable Diffusion 2.x", local_only=True)
    missing = [p for p in SD_PARTS if not (root / p).is_dir()]
    if missing:
        raise ModelFolderError(
            f"Stable Diffusion 2.x folder {root} lacks {', '.join(p + '/' for p in missing)}: pass the diffusers-"
            "layout folder of stabilityai/stable-diffusion-2-1-base (or another SD 2.x model)"
        )
    unet_class = _class_of(root / "unet")
    if unet_class != "UNet2DConditionModel":
        raise ModelFolderError(f"{root / 'unet' / 'config.json'}: _class_name is {unet_class!r}, expected "
                               "'UNet2DConditionModel' (an SD 2.x UNet); a VidRD folder needs no inflation")
    return root


def inflate_sd2(path_or_id: str | os.PathLike, dtype: torch.dtype = torch.float32) -> VidRDComponents:
    """VidRD components inflated from an SD 2.x folder or cached hub id (see the module docstring)."""
    from diffusers import DDIMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    from .models import TemporalAutoencoderKL, VidRDUNet3DConditionModel

    root = resolve_sd2_folder(path_or_id)
    components = VidRDComponents(
        unet=VidRDUNet3DConditionModel.from_unet2d(root, subfolder="unet", torch_dtype=dtype),
        vae=TemporalAutoencoderKL.from_vae2d(root, subfolder="vae", torch_dtype=dtype),
        text_encoder=CLIPTextModel.from_pretrained(root / "text_encoder", dtype=dtype),
        tokenizer=CLIPTokenizer.from_pretrained(root / "tokenizer"),
        # SD ships PNDM's config; the same betas and prediction type drive DDIM
        scheduler=DDIMScheduler.from_config(DDIMScheduler.load_config(root / "scheduler")),
    )
    for model in (components.unet, components.vae, components.text_encoder):
        model.eval()
    return components


def load_any_model(path_or_id: str | os.PathLike, device="cpu", dtype: torch.dtype = torch.float32,
                   what: str = "model") -> VidRDComponents:
    """A VidRD model folder, or an SD 2.x folder inflated on load (said in the log: it costs time every run)."""
    root = resolve_model_folder(path_or_id, what=what)
    if is_sd2_folder(root):
        logger.warning("%s %s is a Stable Diffusion 2.x folder: inflating it to VidRD on load (fresh temporal "
                       "layers). Save the result once with `vidrd-model init --from %s --output DIR` to skip this.",
                       what, path_or_id, path_or_id)
        return inflate_sd2(root, dtype).to(device=device, dtype=dtype)
    return load_vidrd(root, device=device, dtype=dtype)
