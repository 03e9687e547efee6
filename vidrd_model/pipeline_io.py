"""The VidRD model folder: how a complete model is stored, loaded and converted from the authors' release.

Layout (diffusers-pipeline-like)::

    MODEL/
      model_index.json
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

MODEL_INDEX = {
    "_class_name": "VidRDPipeline",
    "unet": ["vidrd_model.models", "VidRDUNet3DConditionModel"],
    "vae": ["vidrd_model.models", "TemporalAutoencoderKL"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "DDIMScheduler"],
}

HOW_TO_PROVIDE = (
    "A VidRD model folder is written by vidrd_model.pipeline_io.save_vidrd; convert the authors' release with "
    "load_released(ModelT2V.pth, <stable-diffusion-2-1-base folder>, vae_finetuned/) followed by save_vidrd, "
    "or make a tiny random one for tests with vidrd_model.testing.make_tiny_vidrd."
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


def resolve_model_folder(path_or_id: str | os.PathLike, what: str = "VidRD model") -> Path:
    """A local directory, or a hub id resolved in the local Hugging Face cache (downloads only when the
    hub is reachable and ``HF_HUB_OFFLINE`` is unset)."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    text = str(path_or_id)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise ModelFolderError(f"{what} folder not found: {path} (no such directory). {HOW_TO_PROVIDE}")
    from huggingface_hub import snapshot_download

    # only the diffusers-layout parts (hub repos of SD also hold multi-GB single-file checkpoints at the top)
    patterns = ["model_index.json", "*/*.json", "*/*.txt", "*/diffusion_pytorch_model.safetensors", "*/model.safetensors"]
    try:
        return Path(snapshot_download(text, allow_patterns=patterns))
    except Exception as err:  # noqa: BLE001 - any hub failure becomes one clear error
        raise ModelFolderError(
            f"{what} {text!r} is neither a local directory nor in the Hugging Face cache "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}): {err}. Download it once with "
            f"`hf download {text}` on a machine with network access, or pass a local folder. {HOW_TO_PROVIDE}"
        ) from err


def check_model_folder(root: Path, components=tuple(MODEL_INDEX)[1:], what: str = "VidRD model") -> None:
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
    """Write ``components`` as a VidRD model folder (safetensors weights); returns the folder."""
    import diffusers

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    components.unet.save_pretrained(root / "unet", safe_serialization=True)
    components.vae.save_pretrained(root / "vae", safe_serialization=True)
    components.text_encoder.save_pretrained(root / "text_encoder", safe_serialization=True)
    components.tokenizer.save_pretrained(root / "tokenizer")
    components.scheduler.save_pretrained(root / "scheduler")
    index = dict(MODEL_INDEX, _diffusers_version=diffusers.__version__)
    (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return root


# --------------------------------------------------------------------------------------------------
# the authors' release


def load_released(
    model_t2v_pth: str | os.PathLike,
    sd21_base_dir: str | os.PathLike,
    vae_finetuned_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    weights_only: bool = True,
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

    sd_root = resolve_model_folder(sd21_base_dir, what="Stable Diffusion 2.1-base")
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
    state_dict = read_released_checkpoint(model_t2v_pth, weights_only=weights_only)

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
    "MODEL_INDEX",
    "ModelFolderError",
    "VidRDComponents",
    "check_model_folder",
    "load_released",
    "load_vidrd",
    "resolve_model_folder",
    "save_vidrd",
]
