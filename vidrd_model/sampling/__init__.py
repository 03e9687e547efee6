"""The iterative long-video sampler of VidRD (FNR · PNS · DSG) and its streaming output.

- `noise`: frame-level noise reversion and past-dependent noise sampling (pure functions)
- `guidance`: the staged-guidance schedule (pure functions)
- `loop`: the explicit loop over clips and steps (`sample_long_video`)
- `schedulers`: diffusers schedulers by name
- `decode`: latents -> frames through the temporal VAE
- `writer`: mp4 / GIF / frame grid written clip by clip
"""

import importlib

# name -> submodule; imported on first use so that `vidrd-model --help` does not import torch / diffusers
_EXPORTS = {
    "apply_staged_guidance": "guidance",
    "guided_frames": "guidance",
    "guided_step_counts": "guidance",
    "ClipLatents": "loop",
    "LongVideoSettings": "loop",
    "denoise_clip": "loop",
    "sample_long_video": "loop",
    "align_to_next_clip": "noise",
    "next_clip_noise": "noise",
    "past_dependent_noise": "noise",
    "reverse_frames": "noise",
    "SCHEDULERS": "schedulers",
    "make_scheduler": "schedulers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
