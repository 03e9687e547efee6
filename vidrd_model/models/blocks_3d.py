"""The down, mid and up blocks of the VidRD UNet: SD 2.x's blocks with a temporal convolution after
every resnet and temporal attention inside every transformer block.

Every block takes frames stacked in the batch, ``(batch * frames, channels, height, width)``, plus
``num_frames``; the timestep embedding and text states arrive already repeated per frame.
"""

from __future__ import annotations

import torch
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

from .temporal_layers import TemporalConvLayer, VidRDTransformer, clip_group_norm


class ResnetBlock3D(ResnetBlock2D):
    """diffusers' ResnetBlock2D (same parameters) on stacked frames, whose two GroupNorms take their
    statistics over the whole clip, as the released model's resnets do on 5-D tensors. Convolutions
    and the time embedding act per frame."""

    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor | None, num_frames: int = 1) -> torch.Tensor:
        hidden_states = self.nonlinearity(clip_group_norm(self.norm1, input_tensor, num_frames))
        hidden_states = self.conv1(hidden_states)
        if self.time_emb_proj is not None and temb is not None:
            hidden_states = hidden_states + self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        hidden_states = self.nonlinearity(clip_group_norm(self.norm2, hidden_states, num_frames))
        hidden_states = self.conv2(self.dropout(hidden_states))
        if self.conv_shortcut is not None:
            input_tensor = self.conv_shortcut(input_tensor)
        return (input_tensor + hidden_states) / self.output_scale_factor


class _VideoBlock(nn.Module):
    """Holds ``attentions``, ``resnets`` and ``temp_convs`` (in the released state dict's order) and runs
    layer ``i`` = resnet, temporal conv, transformer. With gradient checkpointing on (set by
    ``ModelMixin.enable_gradient_checkpointing``) each layer is recomputed in the backward pass."""

    def __init__(
        self,
        resnet_channels: list[tuple[int, int]],
        temb_channels: int,
        dropout: float = 0.0,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int = 32,
        output_scale_factor: float = 1.0,
        add_temp_conv: bool = True,
        temp_conv_dropout: float = 0.1,
        num_attention_heads: int | None = None,
        transformer_kwargs: dict | None = None,
        first_layer_attention: bool = True,
    ):
        super().__init__()
        if resnet_time_scale_shift != "default":
            raise ValueError(f"resnet_time_scale_shift={resnet_time_scale_shift!r} is not supported (SD 2.x: 'default')")
        self.gradient_checkpointing = False
        resnets, temp_convs, attentions = [], [], []
        for i, (cin, cout) in enumerate(resnet_channels):
            resnets.append(
                ResnetBlock3D(
                    in_channels=cin, out_channels=cout, temb_channels=temb_channels, eps=resnet_eps,
                    groups=resnet_groups, dropout=dropout, non_linearity=resnet_act_fn,
                    output_scale_factor=output_scale_factor, pre_norm=True,
                )
            )
            if add_temp_conv:
                temp_convs.append(TemporalConvLayer(cout, num_layers=4, dropout=temp_conv_dropout))
            if num_attention_heads is not None and (i > 0 or first_layer_attention):
                attentions.append(
                    VidRDTransformer(
                        num_attention_heads, cout // num_attention_heads, in_channels=cout,
                        norm_num_groups=resnet_groups, **(transformer_kwargs or {}),
                    )
                )
        self.attentions = nn.ModuleList(attentions) if attentions else None
        self.resnets = nn.ModuleList(resnets)
        self.temp_convs = nn.ModuleList(temp_convs) if temp_convs else None

    def _run(self, fn, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(fn, *args)
        return fn(*args)

    def _layer(self, i, hidden_states, temb, encoder_hidden_states, num_frames):
        def layer(h, t, e, f):
            h = self.resnets[i](h, t, f)
            if self.temp_convs is not None:
                h = self.temp_convs[i](h, f)
            if self.attentions is not None:
                h = self.attentions[i](h, e, f)
            return h

        return self._run(layer, hidden_states, temb, encoder_hidden_states, num_frames)


def _transformer_kwargs(cross_attention_dim, use_linear_projection, upcast_attention, add_temp_attn, add_temp_embed):
    return dict(
        cross_attention_dim=cross_attention_dim, use_linear_projection=use_linear_projection,
        upcast_attention=upcast_attention, add_temp_attn=add_temp_attn, add_temp_embed=add_temp_embed,
    )


class CrossAttnDownBlock3D(_VideoBlock):
    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        num_attention_heads: int | None = 1,
        cross_attention_dim: int = 1024,
        use_linear_projection: bool = True,
        upcast_attention: bool = False,
        add_temp_attn: bool = True,
        add_temp_embed: bool = True,
        add_downsample: bool = True,
        downsample_padding: int = 1,
        **resnet_kwargs,
    ):
        channels = [(in_channels if i == 0 else out_channels, out_channels) for i in range(num_layers)]
        transformer = _transformer_kwargs(cross_attention_dim, use_linear_projection, upcast_attention,
                                          add_temp_attn, add_temp_embed)
        super().__init__(channels, temb_channels, num_attention_heads=num_attention_heads,
                         transformer_kwargs=transformer, **resnet_kwargs)
        self.downsamplers = None
        if add_downsample:
            self.downsamplers = nn.ModuleList(
                [Downsample2D(out_channels, use_conv=True, out_channels=out_channels, padding=downsample_padding, name="op")]
            )

    def forward(self, hidden_states, temb, encoder_hidden_states, num_frames):
        output_states = ()
        for i in range(len(self.resnets)):
            hidden_states = self._layer(i, hidden_states, temb, encoder_hidden_states, num_frames)
            output_states += (hidden_states,)
        if self.downsamplers is not None:
            for downsampler in self.downsamplers:
                hidden_states = downsampler(hidden_states)
            output_states += (hidden_states,)
        return hidden_states, output_states


class DownBlock3D(CrossAttnDownBlock3D):
    has_cross_attention = False

    def __init__(self, in_channels, out_channels, temb_channels, num_layers=1, **kwargs):
        for key in ("num_attention_heads", "cross_attention_dim", "use_linear_projection", "upcast_attention",
                    "add_temp_attn", "add_temp_embed"):
            kwargs.pop(key, None)
        super().__init__(in_channels, out_channels, temb_channels, num_layers, num_attention_heads=None, **kwargs)


class UNetMidBlock3DCrossAttn(_VideoBlock):
    """resnet and temporal conv, then ``num_layers`` × (transformer, resnet, temporal conv)."""

    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        num_attention_heads: int = 1,
        cross_attention_dim: int = 1024,
        use_linear_projection: bool = True,
        upcast_attention: bool = False,
        add_temp_attn: bool = True,
        add_temp_embed: bool = True,
        **resnet_kwargs,
    ):
        transformer = _transformer_kwargs(cross_attention_dim, use_linear_projection, upcast_attention,
                                          add_temp_attn, add_temp_embed)
        # layer 0 has no transformer: attentions[i] sits between resnets[i] and resnets[i + 1]
        super().__init__([(in_channels, in_channels)] * (num_layers + 1), temb_channels,
                         num_attention_heads=num_attention_heads, transformer_kwargs=transformer,
                         first_layer_attention=False, **resnet_kwargs)

    def forward(self, hidden_states, temb, encoder_hidden_states, num_frames):
        def first(h, t, f):
            h = self.resnets[0](h, t, f)
            return self.temp_convs[0](h, f) if self.temp_convs is not None else h

        def layer(i, h, t, e, f):
            h = self.resnets[i + 1](self.attentions[i](h, e, f), t, f)
            return self.temp_convs[i + 1](h, f) if self.temp_convs is not None else h

        hidden_states = self._run(first, hidden_states, temb, num_frames)
        for i in range(len(self.attentions)):
            hidden_states = self._run(layer, i, hidden_states, temb, encoder_hidden_states, num_frames)
        return hidden_states


class CrossAttnUpBlock3D(_VideoBlock):
    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        prev_output_channel: int,
        temb_channels: int,
        num_layers: int = 1,
        num_attention_heads: int | None = 1,
        cross_attention_dim: int = 1024,
        use_linear_projection: bool = True,
        upcast_attention: bool = False,
        add_temp_attn: bool = True,
        add_temp_embed: bool = True,
        add_upsample: bool = True,
        **resnet_kwargs,
    ):
        channels = []
        for i in range(num_layers):
            skip_channels = in_channels if i == num_layers - 1 else out_channels
            resnet_in = prev_output_channel if i == 0 else out_channels
            channels.append((resnet_in + skip_channels, out_channels))
        transformer = _transformer_kwargs(cross_attention_dim, use_linear_projection, upcast_attention,
                                          add_temp_attn, add_temp_embed)
        super().__init__(channels, temb_channels, num_attention_heads=num_attention_heads,
                         transformer_kwargs=transformer, **resnet_kwargs)
        self.upsamplers = None
        if add_upsample:
            self.upsamplers = nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)])

    def forward(self, hidden_states, res_hidden_states_tuple, temb, encoder_hidden_states, num_frames,
                upsample_size=None):
        for i in range(len(self.resnets)):
            hidden_states = torch.cat([hidden_states, res_hidden_states_tuple[-1 - i]], dim=1)
            hidden_states = self._layer(i, hidden_states, temb, encoder_hidden_states, num_frames)
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states, upsample_size)
        return hidden_states


class UpBlock3D(CrossAttnUpBlock3D):
    has_cross_attention = False

    def __init__(self, in_channels, out_channels, prev_output_channel, temb_channels, num_layers=1, **kwargs):
        for key in ("num_attention_heads", "cross_attention_dim", "use_linear_projection", "upcast_attention",
                    "add_temp_attn", "add_temp_embed"):
            kwargs.pop(key, None)
        super().__init__(in_channels, out_channels, prev_output_channel, temb_channels, num_layers,
                         num_attention_heads=None, **kwargs)


DOWN_BLOCKS = {"CrossAttnDownBlock3D": CrossAttnDownBlock3D, "DownBlock3D": DownBlock3D}
UP_BLOCKS = {"CrossAttnUpBlock3D": CrossAttnUpBlock3D, "UpBlock3D": UpBlock3D}
