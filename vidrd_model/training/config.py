"""Training configuration: dataclasses filled from a YAML file (defaults in `vidrd_model/configs/`), then from
a user YAML, then from `--set section.key=value` overrides. Unknown keys fail with the allowed ones listed."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.shard_loader import LoaderConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class ModelSection:
    pretrained: str | None = None          # a VidRD model folder (or hub id in the local cache) to start from
    trainable_patterns: list[str] = field(default_factory=list)  # regexes on parameter names; the rest is frozen


@dataclass
class DiffusionSection:
    prediction_type: str = "epsilon"       # "epsilon" (the paper, SD 2.1-base) or "v_prediction"
    text_dropout: float = 0.1              # classifier-free guidance: share of captions replaced by ""
    snr_gamma: float | None = None         # min-SNR loss weighting (Hang et al. 2023); None: plain MSE
    noise_offset: float = 0.0              # offset noise, one value per video and channel (shared by all frames)


@dataclass
class OptimSection:
    learning_rate: float = 5e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-2
    eps: float = 1e-8
    lr_scheduler: str = "constant_with_warmup"   # any name diffusers.optimization.get_scheduler knows
    warmup_steps: int = 500
    max_grad_norm: float | None = 1.0
    gradient_accumulation_steps: int = 1


@dataclass
class PrecisionSection:
    mixed_precision: str = "no"            # "no", "bf16" or "fp16" (fp16 uses a gradient scaler)
    gradient_checkpointing: bool = False
    allow_tf32: bool = True


@dataclass
class EMASection:
    enabled: bool = True
    decay: float = 0.9999
    warmup: bool = True                    # effective decay min(decay, (1+n)/(10+n)): early steps track fast


@dataclass
class RunSection:
    output_dir: str = "out/train"
    max_steps: int = 10000
    seed: int = 0
    checkpoint_every: int = 1000
    keep_last: int = 3                     # checkpoints kept; older ones are deleted
    log_every: int = 10
    logger: str = "tensorboard"            # "tensorboard" or "csv" (CSV is always written too)
    validation_every: int = 0              # 0: never; needs the iterative sampler (vidrd_model.sampling)
    validation_prompts: list[str] = field(default_factory=list)
    validation_steps: int = 25             # denoising steps for validation videos
    validation_num_clips: int = 1


@dataclass
class VAELossSection:
    l1_weight: float = 1.0
    lpips_weight: float = 0.1              # used only with lpips_vgg_path
    lpips_vgg_path: str | None = None      # torchvision VGG16 state dict (.pth / .safetensors)
    lpips_linear_path: str | None = None   # optional LPIPS linear-layer weights (lpips' vgg.pth); else uniform
    temporal_weight: float = 1.0           # L1 between frame-to-frame differences of output and input
    sample_posterior: bool = True          # decode a posterior sample (True) or its mean


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: LoaderConfig = field(default_factory=LoaderConfig)
    diffusion: DiffusionSection = field(default_factory=DiffusionSection)
    optim: OptimSection = field(default_factory=OptimSection)
    precision: PrecisionSection = field(default_factory=PrecisionSection)
    ema: EMASection = field(default_factory=EMASection)
    run: RunSection = field(default_factory=RunSection)
    vae_loss: VAELossSection = field(default_factory=VAELossSection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(hint, value: Any, path: str):
    # YAML reads "1e-4" as a string; numbers given that way are still numbers.
    kinds = typing.get_args(hint) or (hint,)
    if hint is Any or value is None:
        return value
    if isinstance(value, str) and str not in kinds:
        for kind in (int, float):
            if kind in kinds:
                try:
                    return kind(value)
                except ValueError:
                    pass
        raise ValueError(f"config {path}: expected {hint}, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and float in kinds and int not in kinds:
        return float(value)
    return value


def _build(cls, data: Any, path: str):
    if not dataclasses.is_dataclass(cls):
        return _coerce(cls, data, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"config {path or '<root>'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"config {path + '.' if path else ''}{unknown[0]}: unknown key; allowed: {', '.join(sorted(names))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _build(hints[f.name], data[f.name], f"{path}.{f.name}" if path else f.name)
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_overrides(items: list[str] | None) -> dict:
    """`["optim.learning_rate=1e-4", "data.clip.num_frames=8"]` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected section.key=value, e.g. --set optim.learning_rate=1e-4")
        dotted, value = item.split("=", 1)
        node = out
        *parents, leaf = dotted.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def load_config(default_name: str = "train_default.yaml", user_file: str | None = None,
                overrides: dict | None = None) -> TrainConfig:
    data = yaml.safe_load((CONFIG_DIR / default_name).read_text()) or {}
    if user_file:
        data = _merge(data, yaml.safe_load(Path(user_file).read_text()) or {})
    data = _merge(data, overrides or {})
    return config_from_dict(data)


def config_from_dict(data: dict) -> TrainConfig:
    config = _build(TrainConfig, data, "")
    _check(config)
    return config


def _check(c: TrainConfig) -> None:
    if c.diffusion.prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"diffusion.prediction_type: 'epsilon' or 'v_prediction', got {c.diffusion.prediction_type!r}")
    if c.precision.mixed_precision not in ("no", "bf16", "fp16"):
        raise ValueError(f"precision.mixed_precision: 'no', 'bf16' or 'fp16', got {c.precision.mixed_precision!r}")
    if c.optim.gradient_accumulation_steps < 1:
        raise ValueError("optim.gradient_accumulation_steps must be >= 1")
    if c.run.logger not in ("tensorboard", "csv"):
        raise ValueError(f"run.logger: 'tensorboard' or 'csv', got {c.run.logger!r}")
