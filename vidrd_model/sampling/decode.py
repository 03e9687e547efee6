"""Latents -> frames through the (temporal-aware) VAE, and which frames of each clip go to the output.

Decoding modes:
- "temporal" (default): each clip is decoded as one clip, `vae.decode(z, num_frames=N)`, so the decoder's
  temporal convolutions see the clip's N frames — how the temporal-aware VAE was fine-tuned.
- "per-frame": `num_frames=1`, every frame decoded on its own and the temporal layers bypassed. This is what
  the released VidRD pipeline did (it called `vae.decode(z)` without `num_frames`); offered to reproduce its
  videos exactly.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is not imported at module level: the CLI reads DECODE_MODES for --help
    import torch

DECODE_MODES = ("temporal", "per-frame")


def vae_scale_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def decode_clip(vae, latents: torch.Tensor, mode: str = "temporal") -> torch.Tensor:
    """Clip latents (B, C, N, h, w) -> frames (B, N, 3, H, W) in [-1, 1] (float32)."""
    if mode not in DECODE_MODES:
        raise ValueError(f"decode mode must be one of {DECODE_MODES}; got {mode!r}")
    if latents.ndim != 5:
        raise ValueError(f"clip latents must be (batch, channels, frames, h, w); got {tuple(latents.shape)}")
    b, c, n, h, w = latents.shape
    z = latents.permute(0, 2, 1, 3, 4).reshape(b * n, c, h, w) / vae.config.scaling_factor
    z = z.to(dtype=vae.dtype)
    takes_num_frames = "num_frames" in inspect.signature(vae.decode).parameters
    if mode == "temporal":
        if not takes_num_frames:
            raise ValueError(
                "this VAE's decode() takes no num_frames (a plain 2D AutoencoderKL?); use decode mode 'per-frame' "
                "or load the temporal-aware VAE"
            )
        out = vae.decode(z, num_frames=n)
    else:
        out = vae.decode(z, num_frames=1) if takes_num_frames else vae.decode(z)
    frames = out.sample if hasattr(out, "sample") else out[0]
    return frames.float().reshape(b, n, *frames.shape[1:])


def kept_frames(clip_index: int, num_frames: int, overlap_frames: int, drop_overlap: bool) -> slice:
    """The frames of clip `clip_index` that go to the output: all of them, or, with `drop_overlap`, all but the
    first `overlap_frames` of clips k >= 1 (those repeat clip k−1). K clips give K·N or K·N − (K−1)·M frames."""
    if drop_overlap and clip_index > 0:
        return slice(overlap_frames, num_frames)
    return slice(0, num_frames)


def output_frame_count(num_clips: int, num_frames: int, overlap_frames: int, drop_overlap: bool) -> int:
    return num_clips * num_frames - (num_clips - 1) * overlap_frames * int(drop_overlap)


def latents_video_to_uint8(video: "torch.Tensor"):
    """Decoded frames (F, 3, H, W) in [-1, 1] -> uint8 numpy (F, H, W, 3) RGB."""
    import torch

    if video.ndim != 4 or video.shape[1] != 3:
        raise ValueError(f"expected decoded frames (frames, 3, H, W); got {tuple(video.shape)}")
    x = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
