"""Initial noise of each clip: frame-level noise reversion (FNR) and past-dependent noise sampling (PNS).

All latents are laid out (batch, channels, frames, height, width); frames are dim 2.
These are pure functions: they never draw random numbers themselves, the caller passes every draw.
"""

from __future__ import annotations

import math

import torch

FRAME_DIM = 2


def _check_video_latents(name: str, x: torch.Tensor) -> None:
    if x.ndim != 5:
        raise ValueError(
            f"{name} must be video latents (batch, channels, frames, height, width); got shape {tuple(x.shape)}"
        )


def reverse_frames(x: torch.Tensor) -> torch.Tensor:
    """The clip's frames in reverse order (FNR's permutation)."""
    _check_video_latents("x", x)
    return x.flip(FRAME_DIM)


def rotate_frames(x: torch.Tensor, overlap_frames: int) -> torch.Tensor:
    """The clip's frames rotated so that its last `overlap_frames` frames come first (the permutation used
    when FNR is off: the overlapped frames of the next clip line up with the previous clip's last frames)."""
    _check_video_latents("x", x)
    num_frames = x.shape[FRAME_DIM]
    return x.roll(shifts=overlap_frames - num_frames, dims=FRAME_DIM)


def align_to_next_clip(x: torch.Tensor, overlap_frames: int, reverse: bool = True) -> torch.Tensor:
    """Clip k−1's per-frame tensor (noise or latents) placed in clip k's frame order.

    With `reverse=True` (FNR) frame j of clip k is frame N−1−j of clip k−1; otherwise frame j of clip k is
    frame (N−M+j) mod N of clip k−1. Either way the first `overlap_frames` frames of the result are the ones
    clip k shares with clip k−1.
    """
    return reverse_frames(x) if reverse else rotate_frames(x, overlap_frames)


def noise_mix_weights(alpha: float) -> tuple[float, float]:
    """(weight of the reused noise, weight of the fresh noise) = (α/√(1+α²), 1/√(1+α²)); squares sum to 1,
    so mixing two unit Gaussians gives a unit Gaussian."""
    if alpha < 0:
        raise ValueError(f"noise_recycle_alpha must be >= 0 (0 means all fresh noise); got {alpha}")
    norm = math.sqrt(1.0 + alpha * alpha)
    return alpha / norm, 1.0 / norm


def past_dependent_noise(
    reused: torch.Tensor, fresh: torch.Tensor, overlap_frames: int, alpha: float
) -> torch.Tensor:
    """PNS: keep the first `overlap_frames` frames of `reused`; its other frames become
    α/√(1+α²)·reused + 1/√(1+α²)·fresh.

    `fresh` is a unit Gaussian draw with the shape of a whole clip (as the released code draws it); only its
    last N−M frames are used.
    """
    _check_video_latents("reused", reused)
    if fresh.shape != reused.shape:
        raise ValueError(
            f"fresh noise must have the clip's shape {tuple(reused.shape)}; got {tuple(fresh.shape)}"
        )
    _check_overlap(reused.shape[FRAME_DIM], overlap_frames)
    w_reused, w_fresh = noise_mix_weights(alpha)
    out = reused.clone()
    m = overlap_frames
    out[:, :, m:] = w_reused * reused[:, :, m:] + w_fresh * fresh[:, :, m:].to(reused.dtype)
    return out


def next_clip_noise(
    previous_noise: torch.Tensor,
    fresh: torch.Tensor,
    overlap_frames: int,
    alpha: float,
    frame_noise_reversion: bool = True,
    past_dependent_noise_sampling: bool = True,
) -> torch.Tensor:
    """The (unit-variance) initial noise of clip k ≥ 1 from clip k−1's initial noise and a fresh draw.

    - FNR and PNS both off: plain per-clip sampling, the fresh draw itself.
    - FNR on: clip k−1's noise reversed along frames; off (with PNS on): rotated (see `align_to_next_clip`).
    - PNS on: the non-overlapped frames mix the reused noise with the fresh draw (`past_dependent_noise`).
    """
    if not frame_noise_reversion and not past_dependent_noise_sampling:
        return fresh.clone()
    reused = align_to_next_clip(previous_noise, overlap_frames, reverse=frame_noise_reversion)
    if not past_dependent_noise_sampling:
        return reused
    return past_dependent_noise(reused, fresh, overlap_frames, alpha)


def _check_overlap(num_frames: int, overlap_frames: int) -> None:
    if not 0 <= overlap_frames < num_frames:
        raise ValueError(
            f"overlap_frames must be in [0, num_frames) = [0, {num_frames}); got {overlap_frames} "
            "(the released model uses num_frames=8, overlap_frames=4)"
        )
