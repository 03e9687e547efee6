"""The VidRD video UNet: Stable Diffusion 2.x's UNet with temporal convolutions and temporal attention,
parameter names as in the authors' released checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from .blocks_3d import DOWN_BLOCKS, UP_BLOCKS, UNetMidBlock3DCrossAttn
from .loading import CheckpointMismatchError, is_temporal_key, load_state_dict_strict, mismatch_report
from .temporal_layers import clip_group_norm, clip_to_frames, frames_to_clip

_2D_TO_3D = {
    "CrossAttnDownBlock2D": "CrossAttnDownBlock3D",
    "DownBlock2D": "DownBlock3D",
    "CrossAttnUpBlock2D": "CrossAttnUpBlock3D",
    "UpBlock2D": "UpBlock3D",
}


@dataclass
class VidRDUNetOutput(BaseOutput):
    """``sample``: ``(batch, channels, frames, height, width)``."""

    sample: torch.Tensor


class StrictLoadingMixin:
    """``from_pretrained`` that refuses a checkpoint whose names or shapes differ from the model
    (diffusers only warns), listing what differs. Pass ``strict=False`` to accept it anyway."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, strict: bool = True, **kwargs):
        from diffusers.utils import logging as diffusers_logging

        want_info = kwargs.pop("output_loading_info", False)
        verbosity = diffusers_logging.get_verbosity()
        if strict:  # our error below lists the mismatch; diffusers' long warnings would only repeat it
            diffusers_logging.set_verbosity_error()
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        finally:
            diffusers_logging.set_verbosity(verbosity)
        bad = {k: info.get(k) or [] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if strict and any(bad.values()):
            raise CheckpointMismatchError(
                f"{pretrained_model_name_or_path} does not match {cls.__name__}:\n  "
                + mismatch_report(bad["missing_keys"], bad["unexpected_keys"], [str(m) for m in bad["mismatched_keys"]])
            )
        return (model, info) if want_info else model


class VidRDUNet3DConditionModel(StrictLoadingMixin, ModelMixin, ConfigMixin):
    """Text-conditioned video UNet taking ``(batch, channels, frames, height, width)``.

    Blocks: CrossAttnDown×3 + Down, a cross-attention mid block, Up + CrossAttnUp×3 (SD 2.x). Every
    resnet is followed by a :class:`TemporalConvLayer`; every transformer block has frame-position
    embedding and temporal self-attention. A one-frame clip runs the image path (temporal layers
    skipped). ``attention_head_dim`` is the number of heads, as in SD 2.x's config.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        center_input_sample: bool = False,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D",
        ),
        up_block_types: tuple[str, ...] = (
            "UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D",
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 1024,
        attention_head_dim: int | tuple[int, ...] = (5, 10, 20, 20),
        use_linear_projection: bool = True,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        add_temp_attn: bool = True,
        add_temp_embed: bool = True,
        add_temp_conv: bool = True,
        temp_conv_dropout: float = 0.1,
    ):
        super().__init__()
        if len(down_block_types) != len(block_out_channels) or len(up_block_types) != len(block_out_channels):
            raise ValueError("down_block_types, up_block_types and block_out_channels must have the same length")
        for name in (*down_block_types, *up_block_types):
            if name not in DOWN_BLOCKS and name not in UP_BLOCKS:
                hint = " (a 2-D SD UNet: inflate it with from_unet2d)" if name in _2D_TO_3D else ""
                raise ValueError(
                    f"unknown block type {name!r}{hint}; allowed: {sorted(DOWN_BLOCKS) + sorted(UP_BLOCKS)}"
                )
        heads = attention_head_dim
        if isinstance(heads, int):
            heads = (heads,) * len(down_block_types)
        temporal = dict(add_temp_conv=add_temp_conv, temp_conv_dropout=temp_conv_dropout)
        attn_temporal = dict(add_temp_attn=add_temp_attn, add_temp_embed=add_temp_embed)

        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        time_embed_dim = block_out_channels[0] * 4
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_embed_dim)

        common = dict(
            temb_channels=time_embed_dim, resnet_eps=norm_eps, resnet_act_fn=act_fn, resnet_groups=norm_num_groups,
            resnet_time_scale_shift=resnet_time_scale_shift,
        )
        attn_common = dict(
            cross_attention_dim=cross_attention_dim, use_linear_projection=use_linear_projection,
            upcast_attention=upcast_attention, **attn_temporal,
        )

        self.down_blocks = nn.ModuleList()
        output_channel = block_out_channels[0]
        for i, name in enumerate(down_block_types):
            input_channel, output_channel = output_channel, block_out_channels[i]
            is_final = i == len(block_out_channels) - 1
            kwargs = dict(common, **temporal)
            if name.startswith("CrossAttn"):
                kwargs.update(attn_common, num_attention_heads=heads[i])
            self.down_blocks.append(
                DOWN_BLOCKS[name](
                    in_channels=input_channel, out_channels=output_channel, num_layers=layers_per_block,
                    add_downsample=not is_final, downsample_padding=downsample_padding, **kwargs,
                )
            )

        self.mid_block = UNetMidBlock3DCrossAttn(
            in_channels=block_out_channels[-1], output_scale_factor=mid_block_scale_factor,
            num_attention_heads=heads[-1], **common, **attn_common, **temporal,
        )

        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(block_out_channels))
        reversed_heads = list(reversed(heads))
        output_channel = reversed_channels[0]
        for i, name in enumerate(up_block_types):
            prev_output_channel, output_channel = output_channel, reversed_channels[i]
            input_channel = reversed_channels[min(i + 1, len(block_out_channels) - 1)]
            is_final = i == len(block_out_channels) - 1
            kwargs = dict(common, **temporal)
            if name.startswith("CrossAttn"):
                kwargs.update(attn_common, num_attention_heads=reversed_heads[i])
            self.up_blocks.append(
                UP_BLOCKS[name](
                    in_channels=input_channel, out_channels=output_channel, prev_output_channel=prev_output_channel,
                    num_layers=layers_per_block + 1, add_upsample=not is_final, **kwargs,
                )
            )

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[0], eps=norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, kernel_size=3, padding=1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        return_dict: bool = True,
    ) -> VidRDUNetOutput | tuple[torch.Tensor]:
        """``sample``: ``(b, c, f, h, w)``; ``timestep``: scalar or ``(b,)``; ``encoder_hidden_states``:
        ``(b, tokens, cross_attention_dim)``. Returns the noise prediction, shaped like ``sample``."""
        if sample.ndim != 5:
            raise ValueError(f"sample must be (batch, channels, frames, height, width), got shape {tuple(sample.shape)}")
        batch, _, num_frames, height, width = sample.shape

        # sizes that are not multiples of the total downsampling need explicit upsample sizes
        factor = 2 ** sum(b.upsamplers is not None for b in self.up_blocks)
        forward_upsample_size = height % factor != 0 or width % factor != 0

        timesteps = torch.as_tensor(timestep, device=sample.device)
        if timesteps.ndim == 0:
            timesteps = timesteps[None]
        timesteps = timesteps.expand(batch)
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=sample.dtype))
        # spatial layers see frames as batch items, each with its clip's time and text conditions
        emb = emb.repeat_interleave(num_frames, dim=0)
        encoder_hidden_states = encoder_hidden_states.repeat_interleave(num_frames, dim=0)

        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        hidden_states = self.conv_in(clip_to_frames(sample))

        skips = (hidden_states,)
        for block in self.down_blocks:
            hidden_states, res = block(hidden_states, emb, encoder_hidden_states, num_frames)
            skips += res

        hidden_states = self.mid_block(hidden_states, emb, encoder_hidden_states, num_frames)

        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            upsample_size = skips[-1].shape[2:] if forward_upsample_size and i < len(self.up_blocks) - 1 else None
            hidden_states = block(hidden_states, res, emb, encoder_hidden_states, num_frames, upsample_size)

        hidden_states = clip_group_norm(self.conv_norm_out, hidden_states, num_frames)
        hidden_states = self.conv_out(self.conv_act(hidden_states))
        out = frames_to_clip(hidden_states, num_frames).contiguous()
        return VidRDUNetOutput(sample=out) if return_dict else (out,)

    # ----------------------------------------------------------------------------------------------
    def temporal_parameters(self):
        """(name, parameter) of the layers VidRD adds: the ones fine-tuned on video."""
        return [(n, p) for n, p in self.named_parameters() if is_temporal_key("." + n)]

    @classmethod
    def config_from_unet2d(cls, config2d: dict, **overrides) -> dict:
        """Our config for an SD 2.x ``UNet2DConditionModel`` config; refuses features we do not build."""
        unsupported = {
            "num_class_embeds": None, "class_embed_type": None, "addition_embed_type": None,
            "encoder_hid_dim": None, "time_cond_proj_dim": None, "only_cross_attention": False,
            "dual_cross_attention": False, "transformer_layers_per_block": 1,
            "mid_block_type": "UNetMidBlock2DCrossAttn", "time_embedding_type": "positional",
        }
        for key, ok in unsupported.items():
            value = config2d.get(key)
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(v is not None and v != ok for v in values):
                raise ValueError(f"cannot inflate a UNet with {key}={value!r} (VidRD builds SD 2.x UNets only)")
        heads = config2d.get("num_attention_heads") or config2d["attention_head_dim"]
        keys = [
            "sample_size", "in_channels", "out_channels", "center_input_sample", "flip_sin_to_cos", "freq_shift",
            "block_out_channels", "layers_per_block", "downsample_padding", "mid_block_scale_factor", "act_fn",
            "norm_num_groups", "norm_eps", "cross_attention_dim", "use_linear_projection", "upcast_attention",
            "resnet_time_scale_shift",
        ]
        config = {k: config2d[k] for k in keys if k in config2d and config2d[k] is not None}
        try:
            config["down_block_types"] = [_2D_TO_3D[t] for t in config2d["down_block_types"]]
            config["up_block_types"] = [_2D_TO_3D[t] for t in config2d["up_block_types"]]
        except KeyError as err:
            raise ValueError(f"cannot inflate block type {err.args[0]!r}; supported: {sorted(_2D_TO_3D)}") from None
        config["attention_head_dim"] = list(heads) if isinstance(heads, (list, tuple)) else heads
        config.update(overrides)
        return config

    @classmethod
    def from_unet2d(cls, path_or_model, subfolder: str | None = None, torch_dtype=None, **overrides):
        """Inflate an SD 2.x ``UNet2DConditionModel`` (a model, or a diffusers folder / hub id): its
        weights are copied one to one, the temporal layers keep their fresh initialisation (identity
        temporal convs, zero temporal-attention output)."""
        from diffusers import UNet2DConditionModel

        if isinstance(path_or_model, UNet2DConditionModel):
            unet2d, source = path_or_model, "the given UNet2DConditionModel"
        else:
            source = str(Path(path_or_model) / subfolder) if subfolder else str(path_or_model)
            kwargs = {"subfolder": subfolder} if subfolder else {}
            try:
                unet2d = UNet2DConditionModel.from_pretrained(path_or_model, **kwargs)
            except (OSError, EnvironmentError) as err:
                raise FileNotFoundError(
                    f"no SD 2.x UNet found at {source} (looked for config.json and diffusion_pytorch_model"
                    ".safetensors/.bin there or in the Hugging Face cache): {err}. Pass a local diffusers UNet "
                    "folder, e.g. <stable-diffusion-2-1-base>/unet."
                ) from err
        model = cls.from_config(cls.config_from_unet2d(dict(unet2d.config), **overrides))
        load_state_dict_strict(model, unet2d.state_dict(), f"2D UNet from {source}", allowed_missing=lambda k: is_temporal_key("." + k))
        dtype = torch_dtype or unet2d.dtype
        return model if dtype == model.dtype else model.to(dtype=dtype)
