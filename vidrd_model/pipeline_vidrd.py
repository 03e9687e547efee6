"""`VidRDPipeline`: VidRD as a diffusers `DiffusionPipeline` (text -> long video with FNR · PNS · DSG).

    pipe = VidRDPipeline.from_pretrained("out/train/model")                      # our loader, strict, no code
    pipe = DiffusionPipeline.from_pretrained("out/train/model", trust_remote_code=True)   # diffusers' door
    video = pipe("a dog running on the beach", num_clips=4).frames[0]          # (K·N, H, W, 3) uint8

Folders we save name the class in model_index.json as ``["pipeline_vidrd", "VidRDPipeline"]`` beside a
two-line ``pipeline_vidrd.py`` that imports this module: that is how diffusers resolves a pipeline class it
does not ship, and why it asks for ``trust_remote_code=True`` (it runs that file). `VidRDPipeline.from_pretrained`
runs no file from the folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from .models import TemporalAutoencoderKL, VidRDUNet3DConditionModel  # noqa: F401 - diffusers resolves them here
from .pipeline_io import VidRDComponents

PIPELINE_FILE = "pipeline_vidrd"
_PIPELINE_FILE_TEXT = '''"""Opens this VidRD model folder through diffusers (`DiffusionPipeline.from_pretrained(folder,
trust_remote_code=True)`). The code is the installed vidrd_model package's; this file only names it."""
from vidrd_model.pipeline_vidrd import VidRDPipeline  # noqa: F401
'''


@dataclass
class VidRDPipelineOutput(BaseOutput):
    """``frames``: per prompt, uint8 (frames, H, W, 3) numpy ("np"), float (frames, 3, H, W) in [0, 1] ("pt"),
    or None (output_type=None: the frames went to ``on_clip`` only). ``info``: per prompt, what was produced."""

    frames: list
    info: list


class VidRDPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler):
        super().__init__()
        self.register_modules(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)

    # -- loading and saving ----------------------------------------------------------------------------
    @classmethod
    def from_components(cls, components: VidRDComponents) -> "VidRDPipeline":
        return cls(unet=components.unet, vae=components.vae, text_encoder=components.text_encoder,
                   tokenizer=components.tokenizer, scheduler=components.scheduler)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, torch_dtype: torch.dtype | None = None,
                        device: str | torch.device = "cpu", **kwargs) -> "VidRDPipeline":
        """A VidRD model folder (or cached hub id) or an SD 2.x folder (inflated), through vidrd's strict loader."""
        if kwargs:
            raise TypeError(f"VidRDPipeline.from_pretrained takes torch_dtype and device; got {sorted(kwargs)}. "
                            "For diffusers' own loading options use DiffusionPipeline.from_pretrained(folder, "
                            "trust_remote_code=True, ...)")
        from .sd_inflate import load_any_model

        return cls.from_components(load_any_model(pretrained_model_name_or_path, device=device,
                                                  dtype=torch_dtype or torch.float32))

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        kwargs.setdefault("safe_serialization", True)
        super().save_pretrained(save_directory, **kwargs)
        register_in_folder(save_directory)

    def vidrd_components(self) -> VidRDComponents:
        return VidRDComponents(unet=self.unet, vae=self.vae, text_encoder=self.text_encoder,
                               tokenizer=self.tokenizer, scheduler=self.scheduler)

    # -- the steps of __call__ -------------------------------------------------------------------------
    def encode_prompt(self, prompt: str, negative_prompt: str | None = "watermark"):
        """(prompt embeddings, negative-prompt embeddings), SD 2.x style (last hidden state, max-length padding)."""
        from .sampling.text import encode_prompt

        device = next(self.unet.parameters()).device
        cond = encode_prompt(self.tokenizer, self.text_encoder, prompt, device)
        return cond, encode_prompt(self.tokenizer, self.text_encoder, negative_prompt or "", device)

    def decode_latents(self, latents: torch.Tensor, decode_mode: str = "temporal") -> torch.Tensor:
        """Clip latents (B, C, N, h, w) -> frames (B, N, 3, H, W) in [-1, 1]."""
        from .sampling.decode import decode_clip

        return decode_clip(self.vae, latents, mode=decode_mode)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        num_clips: int = 4,
        num_frames: int = 8,
        overlap_frames: int = 4,
        noise_recycle_alpha: float = 4.0,
        denoise_guidance_gamma: float = 0.4,
        num_inference_steps: int = 50,
        guidance_scale: float = 10.0,
        eta: float = 0.0,
        frame_noise_reversion: bool = True,
        past_dependent_noise: bool = True,
        staged_guidance: bool = True,
        negative_prompt: str | None = "watermark",
        height: Optional[int] = None,
        width: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        decode_mode: str = "temporal",
        drop_overlap: bool = False,
        output_type: str | None = "np",
        on_clip: Optional[Callable[[np.ndarray], None]] = None,
        progress: bool = True,
        settings=None,
        return_dict: bool = True,
    ):
        """Sample one long video per prompt with the iterative sampler (defaults: the released VidRD's).

        ``settings``: a `LongVideoSettings` replacing the sampler arguments. ``on_clip(frames)`` receives each
        clip's uint8 (F, H, W, 3) frames as soon as it is decoded (stream to a file with ``output_type=None``).
        The scheduler is a fresh copy of ``self.scheduler`` per video (set ``pipe.scheduler`` to change it).
        """
        from .sampling.loop import LongVideoSettings
        from .sampling.pipeline import generate_long_video

        if output_type not in ("np", "pt", None):
            raise ValueError(f"output_type must be 'np', 'pt' or None; got {output_type!r}")
        if settings is None:
            settings = LongVideoSettings(
                num_clips=num_clips, num_frames=num_frames, overlap_frames=overlap_frames,
                noise_recycle_alpha=noise_recycle_alpha, denoise_guidance_gamma=denoise_guidance_gamma,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, eta=eta,
                frame_noise_reversion=frame_noise_reversion, past_dependent_noise=past_dependent_noise,
                staged_guidance=staged_guidance)
        videos, infos = [], []
        for text in [prompt] if isinstance(prompt, str) else list(prompt):
            clips: list[np.ndarray] = []

            def take(frames: np.ndarray) -> None:
                if on_clip is not None:
                    on_clip(frames)
                if output_type is not None:
                    clips.append(frames)

            scheduler = type(self.scheduler).from_config(self.scheduler.config)
            infos.append(generate_long_video(
                self.vidrd_components(), text, settings, take, scheduler, negative_prompt=negative_prompt,
                height=height, width=width, generator=generator, decode_mode=decode_mode,
                drop_overlap=drop_overlap, progress=progress))
            video = np.concatenate(clips) if clips else None
            if output_type == "pt" and video is not None:
                video = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255.0
            videos.append(video)
        if not return_dict:
            return (videos, infos)
        return VidRDPipelineOutput(frames=videos, info=infos)


def register_in_folder(folder: str | os.PathLike) -> None:
    """Name `VidRDPipeline` in a saved folder the way diffusers finds a class it does not ship (see module doc)."""
    root = Path(folder)
    index_path = root / "model_index.json"
    index = json.loads(index_path.read_text())
    index["_class_name"] = [PIPELINE_FILE, VidRDPipeline.__name__]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (root / f"{PIPELINE_FILE}.py").write_text(_PIPELINE_FILE_TEXT)
