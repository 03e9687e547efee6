"""Denoising with staged guidance (DSG): which overlapped frames are overwritten at which step.

During the first steps of clip k ≥ 1, overlapped frame j (0 ≤ j < M) is replaced by clip k−1's latent of the
same step, placed in clip k's frame order, while

    i < (M − j) · (T / M) · γ        (i: 0-based step index, T: inference steps, M: overlapped frames)

so frame 0 (the one nearest clip k−1) is guided longest and frame M−1 shortest. For T=50, M=4, γ=0.4 the
frames are guided for 20, 15, 10 and 5 steps. Pure functions; the loop in `loop.py` applies them.

i counts the scheduler's iterations. For the schedulers that evaluate the model more than once per step
(PNDM's warm-up, Heun) there are more iterations than T; the formula is applied to them unchanged.
"""

from __future__ import annotations

import torch


def _is_guided(step_index: int, frame: int, num_inference_steps: int, overlap_frames: int, gamma: float) -> bool:
    # Same arithmetic, in the same order, as the formula above (float comparison, not rounded counts).
    return step_index < (overlap_frames - frame) * (num_inference_steps / overlap_frames) * gamma


def guided_frames(step_index: int, num_inference_steps: int, overlap_frames: int, gamma: float) -> list[int]:
    """The overlapped frames overwritten at step `step_index` (an empty list once guidance has ended)."""
    if gamma < 0:
        raise ValueError(f"denoise_guidance_gamma must be >= 0 (0 turns staged guidance off); got {gamma}")
    return [
        j for j in range(overlap_frames) if _is_guided(step_index, j, num_inference_steps, overlap_frames, gamma)
    ]


def guided_step_counts(num_inference_steps: int, overlap_frames: int, gamma: float) -> list[int]:
    """For each overlapped frame j, the number of steps during which it is overwritten."""
    return [
        sum(_is_guided(i, j, num_inference_steps, overlap_frames, gamma) for i in range(num_inference_steps))
        for j in range(overlap_frames)
    ]


def last_guided_step(num_inference_steps: int, overlap_frames: int, gamma: float) -> int:
    """Number of leading steps during which at least one frame is guided (how many latents to keep)."""
    counts = guided_step_counts(num_inference_steps, overlap_frames, gamma)
    return max(counts, default=0)


def apply_staged_guidance(latents: torch.Tensor, guide: torch.Tensor, frames: list[int]) -> torch.Tensor:
    """`latents` with frames `frames` taken from `guide` (same frame order: guide frame j → latents frame j).

    `guide` holds at least max(frames)+1 frames: the previous clip's latents aligned to this clip.
    """
    if not frames:
        return latents
    if guide.shape[:2] != latents.shape[:2] or guide.shape[3:] != latents.shape[3:]:
        raise ValueError(
            f"guide latents {tuple(guide.shape)} do not match the clip's latents {tuple(latents.shape)} "
            "outside the frame dimension"
        )
    out = latents.clone()
    index = torch.tensor(frames, device=latents.device)
    out.index_copy_(2, index, guide.index_select(2, index).to(latents.dtype))
    return out
