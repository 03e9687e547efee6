"""The iterative long-video sampler of VidRD (FNR · PNS · DSG) and its streaming output.

- `noise`: frame-level noise reversion and past-dependent noise sampling (pure functions)
- `guidance`: the staged-guidance schedule (pure functions)
- `loop`: the explicit loop over clips and steps (`sample_long_video`)
- `schedulers`: diffusers schedulers by name
- `decode`: latents -> frames through the temporal VAE
- `writer`: mp4 / GIF / frame grid written clip by clip
"""

from .guidance import apply_staged_guidance, guided_frames, guided_step_counts
from .loop import ClipLatents, LongVideoSettings, denoise_clip, sample_long_video
from .noise import align_to_next_clip, next_clip_noise, past_dependent_noise, reverse_frames
from .schedulers import SCHEDULERS, make_scheduler

__all__ = [
    "ClipLatents",
    "LongVideoSettings",
    "SCHEDULERS",
    "align_to_next_clip",
    "apply_staged_guidance",
    "denoise_clip",
    "guided_frames",
    "guided_step_counts",
    "make_scheduler",
    "next_clip_noise",
    "past_dependent_noise",
    "reverse_frames",
    "sample_long_video",
]
