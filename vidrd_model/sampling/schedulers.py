"""Diffusers schedulers selectable by name for the sampler (DDIM by default, as released)."""

from __future__ import annotations

# name -> diffusers class name. All take SD 2.x's scheduler config (betas, training steps, prediction type).
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "lms": "LMSDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
}

# SD 2.1-base's scheduler (the released sampler's): DDIM over 1000 scaled-linear steps, ε-prediction.
SD21_BASE_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


def make_scheduler(name: str = "ddim", config: dict | None = None):
    """A fresh scheduler of kind `name` built from `config` (a scheduler config dict or another scheduler's
    `.config`; default SD 2.1-base's). Keys a kind does not use are ignored by diffusers."""
    key = name.lower()
    if key not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    import diffusers

    cls = getattr(diffusers, SCHEDULERS[key])
    return cls.from_config(dict(config if config is not None else SD21_BASE_SCHEDULER_CONFIG))
