"""The temporal-aware VAE: Stable Diffusion's AutoencoderKL whose decoder has a temporal convolution after
every resnet of every up block. Parameter names follow the released ``vae_finetuned/`` (including the
legacy ``query/key/value/proj_attn`` names of the mid-block attention)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_2d_blocks import DownEncoderBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

from .loading import is_temporal_key, load_state_dict_strict
from .temporal_layers import TemporalConvLayer
from .unet_3d import StrictLoadingMixin

# current diffusers attention names -> the legacy names SD's and VidRD's VAE checkpoints use
_ATTENTION_RENAMES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def to_legacy_attention_names(state_dict: dict) -> dict:
    """Rename ``...mid_block.attentions.N.to_q`` etc. to ``query/key/value/proj_attn`` in place."""
    for key in list(state_dict):
        if ".mid_block.attentions." not in key:
            continue
        for new, old in _ATTENTION_RENAMES.items():
            marker = f".{new}."
            if marker in key:
                state_dict[key.replace(marker, f".{old}.")] = state_dict.pop(key)
                break
    return state_dict


def _vae_resnet(in_channels, out_channels, groups, act_fn):
    return ResnetBlock2D(
        in_channels=in_channels, out_channels=out_channels, temb_channels=None, eps=1e-6, groups=groups,
        dropout=0.0, non_linearity=act_fn, output_scale_factor=1.0, pre_norm=True,
    )


class VAEAttention(nn.Module):
    """Single-head spatial self-attention of SD's VAE mid block (GroupNorm, residual), under the
    checkpoint's legacy parameter names; computed with scaled-dot-product attention."""

    def __init__(self, channels: int, norm_num_groups: int = 32):
        super().__init__()
        self.group_norm = nn.GroupNorm(norm_num_groups, channels, eps=1e-6, affine=True)
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(channels, channels)
        self.value = nn.Linear(channels, channels)
        self.proj_attn = nn.Linear(channels, channels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        b, c, h, w = hidden_states.shape
        x = self.group_norm(hidden_states).reshape(b, c, h * w).transpose(1, 2)
        q, k, v = (proj(x)[:, None] for proj in (self.query, self.key, self.value))
        x = F.scaled_dot_product_attention(q, k, v)[:, 0]
        x = self.proj_attn(x).transpose(1, 2).reshape(b, c, h, w)
        return x + residual


class VAEMidBlock(nn.Module):
    """resnet, attention, resnet (SD's VAE mid block)."""

    def __init__(self, channels: int, norm_num_groups: int, act_fn: str):
        super().__init__()
        self.attentions = nn.ModuleList([VAEAttention(channels, norm_num_groups)])
        self.resnets = nn.ModuleList([_vae_resnet(channels, channels, norm_num_groups, act_fn) for _ in range(2)])

    def forward(self, hidden_states):
        hidden_states = self.resnets[0](hidden_states, None)
        hidden_states = self.attentions[0](hidden_states)
        return self.resnets[1](hidden_states, None)


class VAEEncoder(nn.Module):
    """SD's VAE encoder (unchanged by VidRD)."""

    def __init__(self, in_channels, latent_channels, block_out_channels, layers_per_block, norm_num_groups, act_fn):
        super().__init__()
        self.gradient_checkpointing = False
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.down_blocks = nn.ModuleList()
        output_channel = block_out_channels[0]
        for i, channels in enumerate(block_out_channels):
            input_channel, output_channel = output_channel, channels
            self.down_blocks.append(
                DownEncoderBlock2D(
                    in_channels=input_channel, out_channels=output_channel, num_layers=layers_per_block,
                    resnet_eps=1e-6, resnet_act_fn=act_fn, resnet_groups=norm_num_groups,
                    add_downsample=i < len(block_out_channels) - 1, downsample_padding=0,
                )
            )
        self.mid_block = VAEMidBlock(block_out_channels[-1], norm_num_groups, act_fn)
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[-1], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[-1], 2 * latent_channels, kernel_size=3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for block in [*self.down_blocks, self.mid_block]:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = self._gradient_checkpointing_func(block, x)
            else:
                x = block(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class TemporalUpDecoderBlock(nn.Module):
    """SD's UpDecoderBlock2D with a :class:`TemporalConvLayer` after each resnet."""

    def __init__(self, in_channels, out_channels, num_layers, norm_num_groups, act_fn, add_upsample,
                 add_temp_conv=True, temp_conv_layers=3, temp_conv_dropout=0.0):
        super().__init__()
        self.resnets = nn.ModuleList(
            _vae_resnet(in_channels if i == 0 else out_channels, out_channels, norm_num_groups, act_fn)
            for i in range(num_layers)
        )
        self.temp_convs = (
            nn.ModuleList(
                TemporalConvLayer(out_channels, num_layers=temp_conv_layers, dropout=temp_conv_dropout,
                                  norm_num_groups=norm_num_groups)
                for _ in range(num_layers)
            )
            if add_temp_conv else None
        )
        self.upsamplers = (
            nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)]) if add_upsample else None
        )

    def forward(self, hidden_states, num_frames: int = 1):
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(hidden_states, None)
            if self.temp_convs is not None:
                hidden_states = self.temp_convs[i](hidden_states, num_frames)
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states)
        return hidden_states


class TemporalDecoder(nn.Module):
    def __init__(self, latent_channels, out_channels, block_out_channels, layers_per_block, norm_num_groups, act_fn,
                 add_temp_conv=True, temp_conv_layers=3, temp_conv_dropout=0.0):
        super().__init__()
        self.gradient_checkpointing = False
        self.conv_in = nn.Conv2d(latent_channels, block_out_channels[-1], kernel_size=3, padding=1)
        self.up_blocks = nn.ModuleList()
        self.mid_block = VAEMidBlock(block_out_channels[-1], norm_num_groups, act_fn)
        reversed_channels = list(reversed(block_out_channels))
        output_channel = reversed_channels[0]
        for i, channels in enumerate(reversed_channels):
            prev_output_channel, output_channel = output_channel, channels
            self.up_blocks.append(
                TemporalUpDecoderBlock(
                    prev_output_channel, output_channel, layers_per_block + 1, norm_num_groups, act_fn,
                    add_upsample=i < len(block_out_channels) - 1, add_temp_conv=add_temp_conv,
                    temp_conv_layers=temp_conv_layers, temp_conv_dropout=temp_conv_dropout,
                )
            )
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[0], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, kernel_size=3, padding=1)

    def forward(self, z, num_frames: int = 1):
        ckpt = self.gradient_checkpointing and torch.is_grad_enabled()
        x = self.conv_in(z)
        x = self._gradient_checkpointing_func(self.mid_block, x) if ckpt else self.mid_block(x)
        for block in self.up_blocks:
            x = self._gradient_checkpointing_func(block, x, num_frames) if ckpt else block(x, num_frames)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class TemporalAutoencoderKL(StrictLoadingMixin, ModelMixin, ConfigMixin):
    """SD's AutoencoderKL with a temporal-aware decoder.

    ``decode(z, num_frames=N)`` treats every ``N`` consecutive latents of ``z`` ``(B, C, h, w)`` as one clip
    (``B`` a multiple of ``N``); a 5-D ``z`` ``(b, C, f, h, w)`` is decoded clip by clip and returned 5-D.
    ``num_frames=1`` decodes frame by frame, which is SD's VAE exactly.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",) * 4,
        up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",) * 4,
        block_out_channels: tuple[int, ...] = (128, 256, 512, 512),
        layers_per_block: int = 2,
        act_fn: str = "silu",
        latent_channels: int = 4,
        norm_num_groups: int = 32,
        sample_size: int = 512,
        scaling_factor: float = 0.18215,
        add_temp_conv: bool = True,
        temp_conv_layers: int = 3,
        temp_conv_dropout: float = 0.0,
    ):
        super().__init__()
        for name in down_block_types:
            if name != "DownEncoderBlock2D":
                raise ValueError(f"unsupported VAE down block {name!r}")
        for name in up_block_types:
            if name != "UpDecoderBlock2D":
                raise ValueError(f"unsupported VAE up block {name!r}")
        self.encoder = VAEEncoder(in_channels, latent_channels, block_out_channels, layers_per_block,
                                  norm_num_groups, act_fn)
        self.decoder = TemporalDecoder(latent_channels, out_channels, block_out_channels, layers_per_block,
                                       norm_num_groups, act_fn, add_temp_conv, temp_conv_layers, temp_conv_dropout)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        """Posterior of images ``(B, 3, H, W)`` or clips ``(b, 3, f, H, W)`` (5-D in, 5-D latents out)."""
        clip = x.ndim == 5
        if clip:
            b, c, f, h, w = x.shape
            x = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        moments = self.quant_conv(self.encoder(x))
        if clip:
            moments = moments.reshape(b, f, *moments.shape[1:]).permute(0, 2, 1, 3, 4)
        posterior = DiagonalGaussianDistribution(moments)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: torch.Tensor, num_frames: int | None = None, return_dict: bool = True):
        clip = z.ndim == 5
        if clip:
            b, c, f, h, w = z.shape
            if num_frames not in (None, f):
                raise ValueError(f"num_frames={num_frames} contradicts the clip's {f} frames")
            num_frames = f
            z = z.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        num_frames = num_frames or 1
        if z.shape[0] % num_frames:
            raise ValueError(f"{z.shape[0]} latents cannot be split into clips of num_frames={num_frames}")
        sample = self.decoder(self.post_quant_conv(z), num_frames)
        if clip:
            sample = sample.reshape(b, f, *sample.shape[1:]).permute(0, 2, 1, 3, 4)
        return DecoderOutput(sample=sample) if return_dict else (sample,)

    def forward(self, sample, sample_posterior: bool = False, generator=None, num_frames: int | None = None,
                return_dict: bool = True):
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, num_frames=num_frames, return_dict=return_dict)

    def temporal_parameters(self):
        return [(n, p) for n, p in self.named_parameters() if is_temporal_key("." + n)]

    def _fix_state_dict_keys_on_load(self, state_dict) -> None:
        # a VAE saved by current diffusers names the mid-block attention to_q/...; ours keeps SD's names
        to_legacy_attention_names(state_dict)

    @classmethod
    def from_vae2d(cls, path_or_model, subfolder: str | None = None, torch_dtype=None, **overrides):
        """SD's VAE (an ``AutoencoderKL`` or its diffusers folder / hub id) with fresh temporal layers
        (identity: their last conv is zero)."""
        from diffusers import AutoencoderKL

        if isinstance(path_or_model, AutoencoderKL):
            vae2d, source = path_or_model, "the given AutoencoderKL"
        else:
            source = str(Path(path_or_model) / subfolder) if subfolder else str(path_or_model)
            kwargs = {"subfolder": subfolder} if subfolder else {}
            try:
                vae2d = AutoencoderKL.from_pretrained(path_or_model, **kwargs)
            except (OSError, EnvironmentError) as err:
                raise FileNotFoundError(
                    f"no SD VAE found at {source} (looked for config.json and diffusion_pytorch_model"
                    ".safetensors/.bin there or in the Hugging Face cache): {err}. Pass a local diffusers VAE "
                    "folder, e.g. <stable-diffusion-2-1-base>/vae."
                ) from err
        keys = ["in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
                "layers_per_block", "act_fn", "latent_channels", "norm_num_groups", "sample_size", "scaling_factor"]
        config = {k: vae2d.config[k] for k in keys if k in vae2d.config}
        config.update(overrides)
        model = cls.from_config(config)
        state_dict = to_legacy_attention_names(dict(vae2d.state_dict()))
        load_state_dict_strict(model, state_dict, f"VAE from {source}", allowed_missing=lambda k: is_temporal_key("." + k))
        dtype = torch_dtype or vae2d.dtype
        return model if dtype == model.dtype else model.to(dtype=dtype)
