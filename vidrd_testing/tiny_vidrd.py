"""Tiny random VidRD models saved to disk, for tests: they load through the same code as real checkpoints.

``make_tiny_vidrd(path)`` writes a complete VidRD model folder (see :mod:`vidrd_model.pipeline_io`):
a tiny video UNet shaped like the reference fixtures' (channels 32,32,64,64, cross-attention dim 32), a
tiny temporal VAE (4 blocks, so latents are 1/8 of the image size, as SD's), a 2-layer CLIP text encoder
with a byte-level BPE tokenizer written here (any text tokenises; 16 tokens max) and SD 2.1-base's DDIM
scheduler. ``make_tiny_sd2(path)`` writes the matching tiny Stable Diffusion 2.x folder (2-D UNet, plain
AutoencoderKL), the input of inflation and of :func:`~vidrd_model.pipeline_io.load_released`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

TOKENIZER_MAX_LENGTH = 16
TEXT_HIDDEN_SIZE = 32

TINY_UNET2D_CONFIG = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 32, 64, 64],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-05,
    "cross_attention_dim": TEXT_HIDDEN_SIZE,
    "attention_head_dim": [2, 2, 4, 4],
    "use_linear_projection": True,
    "upcast_attention": False,
}

TINY_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [32, 32, 32, 32],
    "layers_per_block": 1,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 128,
    "scaling_factor": 0.18215,
}

# SD 2.1-base's noise schedule (the reference sampler run's scheduler)
SD21_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

# a few merges so that common words become single tokens; everything else falls back to bytes
_WORDS = ["a", "the", "of", "and", "in", "on", "with", "dog", "cat", "man", "woman", "video", "running",
          "playing", "person", "walking", "car", "street", "water", "ball", "guitar", "beach", "sky", "red"]


def _byte_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the bytes 0..255, in CLIP's vocabulary order:
    printable Latin-1 bytes stand for themselves and come first (so ``!`` is id 0, SD 2.x's pad token);
    the other bytes are shifted to code points 256 and up and follow."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def write_tiny_clip_tokenizer_files(folder: str | os.PathLike) -> Path:
    """vocab.json + merges.txt of a tiny CLIP BPE: the byte alphabet (plain and word-final ``</w>``),
    the merges that spell :data:`_WORDS`, and CLIP's two special tokens."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = _byte_alphabet()
    vocab_list = base + [c + "</w>" for c in base]
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        if len(word) < 2:
            continue
        # merge left to right: ((w o) r) d</w>
        left = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            pair = (left, right)
            if pair not in merges:
                merges.append(pair)
                if left + right not in vocab_list:
                    vocab_list.append(left + right)
            left = left + right
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return folder


def make_tiny_tokenizer(folder: str | os.PathLike):
    """A CLIPTokenizer (SD 2.x style: pads with ``!``) over the tiny vocabulary, saved in ``folder``."""
    from transformers import CLIPTokenizer

    folder = write_tiny_clip_tokenizer_files(folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:] if line]
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=TOKENIZER_MAX_LENGTH)
    tokenizer.save_pretrained(folder)
    return tokenizer


def make_tiny_text_encoder(vocab_size: int, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_HIDDEN_SIZE,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=TOKENIZER_MAX_LENGTH,
        projection_dim=TEXT_HIDDEN_SIZE,
        hidden_act="gelu",
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=0,
    )
    return CLIPTextModel(config).eval()


def _perturb_temporal(model: torch.nn.Module, scale: float, seed: int) -> None:
    """Give the (zero-initialised) temporal layers small random values so they do something."""
    from vidrd_model.models import is_temporal_key

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if is_temporal_key("." + name):
                p.add_(torch.randn(p.shape, generator=gen) * scale)


def make_tiny_components(seed: int = 0, tmp_tokenizer_dir: str | os.PathLike | None = None,
                         perturb_temporal: float = 0.0, **unet_overrides):
    """Tiny random :class:`~vidrd_model.pipeline_io.VidRDComponents` in memory."""
    import tempfile

    from diffusers import DDIMScheduler

    from vidrd_model.models import TemporalAutoencoderKL, VidRDUNet3DConditionModel
    from vidrd_model.pipeline_io import VidRDComponents

    torch.manual_seed(seed)
    unet = VidRDUNet3DConditionModel.from_config(
        VidRDUNet3DConditionModel.config_from_unet2d(TINY_UNET2D_CONFIG, **unet_overrides)
    )
    torch.manual_seed(seed + 1)
    vae = TemporalAutoencoderKL.from_config(TINY_VAE_CONFIG)
    if perturb_temporal:
        _perturb_temporal(unet, perturb_temporal, seed)
        _perturb_temporal(vae, perturb_temporal, seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = make_tiny_tokenizer(tmp_tokenizer_dir or tmp)
    text_encoder = make_tiny_text_encoder(len(tokenizer), seed + 2)
    return VidRDComponents(
        unet=unet.eval(), vae=vae.eval(), text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=DDIMScheduler(**SD21_SCHEDULER_CONFIG),
    )


def make_tiny_vidrd(path: str | os.PathLike, seed: int = 0, perturb_temporal: float = 0.0, **unet_overrides) -> Path:
    """Save a tiny random, complete VidRD model folder at ``path`` and return it.

    ``perturb_temporal``: std of noise added to the temporal layers (0 keeps them at their fresh,
    identity initialisation). ``unet_overrides``: e.g. ``add_temp_conv=False``.
    """
    from vidrd_model.pipeline_io import save_vidrd

    components = make_tiny_components(seed, perturb_temporal=perturb_temporal, **unet_overrides)
    return save_vidrd(components, path)


def make_tiny_sd2(path: str | os.PathLike, seed: int = 0) -> Path:
    """Save a tiny random Stable Diffusion 2.x folder (diffusers layout: 2-D UNet, AutoencoderKL, CLIP text
    encoder and tokenizer, scheduler) at ``path``; the same sizes as :func:`make_tiny_vidrd`."""
    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    UNet2DConditionModel(**TINY_UNET2D_CONFIG).save_pretrained(root / "unet")
    torch.manual_seed(seed + 1)
    AutoencoderKL(**TINY_VAE_CONFIG).save_pretrained(root / "vae")
    tokenizer = make_tiny_tokenizer(root / "tokenizer")
    make_tiny_text_encoder(len(tokenizer), seed + 2).save_pretrained(root / "text_encoder")
    DDIMScheduler(**SD21_SCHEDULER_CONFIG).save_pretrained(root / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"],
    }
    (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return root


__all__ = [
    "SD21_SCHEDULER_CONFIG",
    "TINY_UNET2D_CONFIG",
    "TINY_VAE_CONFIG",
    "TOKENIZER_MAX_LENGTH",
    "make_tiny_components",
    "make_tiny_sd2",
    "make_tiny_tokenizer",
    "make_tiny_vidrd",
]
