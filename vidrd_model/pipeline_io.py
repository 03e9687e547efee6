"""The VidRD model folder: how a complete model is stored, loaded and converted from the authors' release.

Layout (diffusers-pipeline-like)::

    MODEL/
      model_index.json   names VidRDPipeline and each part's class (DiffusionPipeline.from_pretrained opens it)
      pipeline_vidrd.py  two lines naming vidrd_model.pipeline_vidrd.VidRDPipeline for diffusers (see there)
      unet/          VidRDUNet3DConditionModel  (config.json, diffusion_pytorch_model.safetensors)
      vae/           TemporalAutoencoderKL       (config.json, diffusion_pytorch_model.safetensors)
      text_encoder/  transformers CLIPTextModel  (config.json, model.safetensors)
      tokenizer/     transformers CLIPTokenizer  (vocab.json, merges.txt, ...)
      scheduler/     diffusers DDIMScheduler     (scheduler_config.json)

``MODEL`` is a local directory or a Hugging Face hub id already in the local cache (``HF_HUB_OFFLINE``
is honoured: nothing is downloaded while it is set).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .models import TemporalAutoencoderKL, VidRDUNet3DConditionModel
from .models.loading import load_state_dict_strict, read_released_checkpoint, split_prefixed

# the parts of a model folder; model_index.json (written by VidRDPipeline.save_pretrained) names their classes
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

HOW_TO_PROVIDE = (
    "Make a VidRD model folder with `vidrd-model init --from <stable-diffusion-2-1-base folder or cached hub id> "
    "--output DIR` (SD 2.x inflated with fresh temporal layers) or `vidrd-model convert --released ModelT2V.pth "
    "--sd-base <SD 2.1-base folder> --output DIR` (the authors' released weights)."
)


class ModelFolderError(FileNotFoundError):
    """A model folder (or part of one) that is not where it was looked for."""


@dataclass
class VidRDComponents:
    unet: VidRDUNet3DConditionModel
    vae: TemporalAutoencoderKL
    text_encoder: Any  # transformers.CLIPTextModel
    tokenizer: Any  # transformers.CLIPTokenizer
    scheduler: Any  # diffusers.DDIMScheduler

    def to(self, device=None, dtype=None) -> "VidRDComponents":
        for model in (self.unet, self.vae, self.text_encoder):
            model.to(device=device, dtype=dtype)
        return self


# --------------------------------------------------------------------------------------------------
# locating folders


def _weights_present(folder: Path, stems: tuple[str, ...]) -> bool:
    return any((folder / f"{stem}{ext}").is_file() or (folder / f"{stem}{ext}.index.json").is_file()
               for stem in stems for ext in (".safetensors", ".bin"))


_REQUIREMENTS = {
    # component: (files that must all exist, weight stems of which one must exist)
    "unet": (("config.json",), ("diffusion_pytorch_model",)),
    "vae": (("config.json",), ("diffusion_pytorch_model",)),
    "text_encoder": (("config.json",), ("model", "pytorch_model")),
    "tokenizer": ((), ()),
    "scheduler": (("scheduler_config.json",), ()),
}


def _missing_parts(root: Path, components, requirements=None) -> list[str]:
    requirements = requirements or _REQUIREMENTS
    missing = []
    for name in components:
        folder = root / name
        files, stems = requirements[name]
        if not folder.is_dir():
            missing.append(f"{name}/ (folder)")
            continue
        missing += [f"{name}/{f}" for f in files if not (folder / f).is_file()]
        if stems and not _weights_present(folder, stems):
            missing.append(f"{name}/{stems[0]}.safetensors (or .bin)")
        if name == "tokenizer" and not (
            (folder / "tokenizer.json").is_file() or ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file())
        ):
            missing.append("tokenizer/vocab.json + merges.txt (or tokenizer.json)")
    return missing


def resolve_model_folder(path_or_id: str | os.PathLike, what: str = "VidRD model", local_only: bool = False) -> Path:
    """A local directory, or a hub id resolved in the local Hugging Face cache. Downloads only when the hub is
    reachable, ``HF_HUB_OFFLINE`` is unset and ``local_only`` is False."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    text = str(path_or_id)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise ModelFolderError(f"{what} folder not found: {path} (no such directory). {HOW_TO_PROVIDE}")
    from huggingface_hub import constants, snapshot_download

    # only the diffusers-layout parts (hub repos of SD also hold multi-GB single-file checkpoints at the top)
    patterns = ["model_index.json", "*/*.json", "*/*.txt", "*/diffusion_pytorch_model.safetensors", "*/model.safetensors"]
    try:
        return Path(snapshot_download(text, allow_patterns=patterns, local_files_only=local_only))
    except Exception as err:  # noqa: BLE001 - any hub failure becomes one clear error
        where = "in the local Hugging Face cache" if local_only else "in the Hugging Face cache"
        raise ModelFolderError(
            f"{what} {text!r} is neither a local directory nor {where} ({constants.HF_HUB_CACHE}; "
            f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}): {type(err).__name__}. Download it once on a "
            f"machine with network access: `hf download {text} --include {' '.join(repr(p) for p in patterns)}` "
            f"(then copy the cache here), or pass a local folder. {HOW_TO_PROVIDE}"
        ) from err


def check_model_folder(root: Path, components=COMPONENTS, what: str = "VidRD model") -> None:
    missing = _missing_parts(root, components)
    if missing:
        raise ModelFolderError(
            f"{what} folder {root} is incomplete; looked for and did not find: {', '.join(missing)}. {HOW_TO_PROVIDE}"
        )


# --------------------------------------------------------------------------------------------------
# load / save


def load_vidrd(
    path_or_components: str | os.PathLike | VidRDComponents,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> VidRDComponents:
    """Load a VidRD model folder (or move already loaded components) onto ``device`` in ``dtype``.
    Every part is checked before any weights are read. Models come back in eval mode."""
    if isinstance(path_or_components, VidRDComponents):
        return path_or_components.to(device=device, dtype=dtype)

    from diffusers import DDIMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    root = resolve_model_folder(path_or_components)
    check_model_folder(root)
    components = VidRDComponents(
        unet=VidRDUNet3DConditionModel.from_pretrained(root / "unet", torch_dtype=dtype),
        vae=TemporalAutoencoderKL.from_pretrained(root / "vae", torch_dtype=dtype),
        text_encoder=CLIPTextModel.from_pretrained(root / "text_encoder", dtype=dtype),
        tokenizer=CLIPTokenizer.from_pretrained(root / "tokenizer"),
        scheduler=DDIMScheduler.from_pretrained(root / "scheduler"),
    )
    for model in (components.unet, components.vae, components.text_encoder):
        model.to(device).eval()
    return components


def save_vidrd(components: VidRDComponents, path: str | os.PathLike) -> Path:
    """Write ``components`` as a VidRD model folder (safetensors weights, VidRDPipeline registered); returns it."""
    from .pipeline_vidrd import VidRDPipeline

    root = Path(path)
    VidRDPipeline.from_components(components).save_pretrained(root)
    return root


# --------------------------------------------------------------------------------------------------
# the authors' release


def load_released(
    model_t2v_pth: str | os.PathLike,
    sd21_base_dir: str | os.PathLike,
    vae_finetuned_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> VidRDComponents:
    """Assemble VidRD from the released files.

    ``model_t2v_pth``: the released ``ModelT2V.pth`` (``state_dict`` keyed ``unet.*`` / ``text_encoder.*``),
    loaded strictly. ``sd21_base_dir``: Stable Diffusion 2.1-base in diffusers layout (local folder or
    cached hub id ``stabilityai/stable-diffusion-2-1-base``): gives the UNet configuration, the tokenizer,
    the scheduler, the text encoder's configuration, and the VAE when ``vae_finetuned_dir`` is not given
    (its temporal layers then start as the identity). ``vae_finetuned_dir``: the released temporal VAE
    folder, loaded strictly.
    """
    from diffusers import DDIMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    sd_root = resolve_model_folder(sd21_base_dir, what="Stable Diffusion 2.1-base", local_only=True)
    needed = ["unet", "text_encoder", "tokenizer", "scheduler"] + ([] if vae_finetuned_dir else ["vae"])
    # only the SD UNet's config is used: its weights come from ModelT2V.pth
    missing = _missing_parts(sd_root, needed, dict(_REQUIREMENTS, unet=(("config.json",), ())))
    if missing:
        raise ModelFolderError(
            f"Stable Diffusion 2.1-base folder {sd_root} is incomplete; looked for and did not find: "
            f"{', '.join(missing)}. Pass the diffusers-format stabilityai/stable-diffusion-2-1-base folder."
        )
    if vae_finetuned_dir is not None:
        vae_root = Path(vae_finetuned_dir)
        if not (vae_root / "config.json").is_file() or not _weights_present(vae_root, ("diffusion_pytorch_model",)):
            raise ModelFolderError(
                f"released temporal VAE not found in {vae_root}: looked for config.json and "
                "diffusion_pytorch_model.safetensors/.bin. Pass the released vae_finetuned/ folder, or None to "
                "use SD's VAE with identity temporal layers."
            )
    state_dict = read_released_checkpoint(model_t2v_pth)

    unet_config = json.loads((sd_root / "unet" / "config.json").read_text())
    unet = VidRDUNet3DConditionModel.from_config(VidRDUNet3DConditionModel.config_from_unet2d(unet_config))
    load_state_dict_strict(unet, split_prefixed(state_dict, "unet"), f"{model_t2v_pth} (unet.*)")

    text_encoder = CLIPTextModel.from_pretrained(sd_root / "text_encoder")
    te_state = split_prefixed(state_dict, "text_encoder")
    if te_state:
        own = text_encoder.state_dict()
        # older transformers stored this buffer; it is a constant, not a weight
        te_state = {k: v for k, v in te_state.items() if not (k.endswith("position_ids") and k not in own)}
        load_state_dict_strict(text_encoder, te_state, f"{model_t2v_pth} (text_encoder.*)")

    if vae_finetuned_dir is not None:
        vae = TemporalAutoencoderKL.from_pretrained(vae_finetuned_dir)
    else:
        vae = TemporalAutoencoderKL.from_vae2d(sd_root / "vae")

    components = VidRDComponents(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(sd_root / "tokenizer"),
        scheduler=DDIMScheduler.from_pretrained(sd_root / "scheduler"),
    )
    components.to(device=device, dtype=dtype)
    for model in (components.unet, components.vae, components.text_encoder):
        model.eval()
    return components


__all__ = [
    "COMPONENTS",
    "ModelFolderError",
    "VidRDComponents",
    "check_model_folder",
    "load_released",
    "load_vidrd",
    "resolve_model_folder",
    "save_vidrd",
]
