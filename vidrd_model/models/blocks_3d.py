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


class _CheckpointedBlock(nn.Module):
    """Runs each layer through ``self._gradient_checkpointing_func`` when gradient checkpointing is on
    (set by ``ModelMixin.enable_gradient_checkpointing``) and gradients are being recorded."""

    def __init__(self):
        super().__init__()
        self.gradient_checkpointing = False

    def _run(self, fn, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(fn, *args)
        return fn(*args)


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


def _resnet(in_channels, out_channels, temb_channels, eps, groups, dropout, act_fn, output_scale_factor, time_scale_shift):
    if time_scale_shift != "default":
        raise ValueError(f"resnet_time_scale_shift={time_scale_shift!r} is not supported (SD 2.x uses 'default')")
    return ResnetBlock3D(
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=temb_channels,
        eps=eps,
        groups=groups,
        dropout=dropout,
        non_linearity=act_fn,
        output_scale_factor=output_scale_factor,
        pre_norm=True,
    )


def _layer_fn(resnet, temp_conv, attention):
    def run(hidden_states, temb, encoder_hidden_states, num_frames):
        hidden_states = resnet(hidden_states, temb, num_frames)
        if temp_conv is not None:
            hidden_states = temp_conv(hidden_states, num_frames)
        if attention is not None:
            hidden_states = attention(hidden_states, encoder_hidden_states, num_frames)
        return hidden_states

    return run


class _Block3DBase(_CheckpointedBlock):
    def _build(
        self,
        resnet_io,
        temb_channels,
        resnet_eps,
        resnet_groups,
        dropout,
        resnet_act_fn,
        output_scale_factor,
        resnet_time_scale_shift,
        add_temp_conv,
        temp_conv_dropout,
        attention_channels=None,
        num_attention_heads=None,
        cross_attention_dim=None,
        use_linear_projection=True,
        upcast_attention=False,
        add_temp_attn=True,
        add_temp_embed=True,
        transformer_layers_per_block=1,
    ):
        resnets, temp_convs, attentions = [], [], []
        for i, (cin, cout) in enumerate(resnet_io):
            resnets.append(
                _resnet(cin, cout, temb_channels, resnet_eps, resnet_groups, dropout, resnet_act_fn,
                        output_scale_factor, resnet_time_scale_shift)
            )
            if add_temp_conv:
                temp_convs.append(TemporalConvLayer(cout, num_layers=4, dropout=temp_conv_dropout))
            if num_attention_heads is not None and attention_channels is not None:
                attentions.append(
                    VidRDTransformer(
                        num_attention_heads,
                        cout // num_attention_heads,
                        in_channels=cout,
                        num_layers=transformer_layers_per_block,
                        cross_attention_dim=cross_attention_dim,
                        norm_num_groups=resnet_groups,
                        use_linear_projection=use_linear_projection,
                        upcast_attention=upcast_attention,
                        add_temp_attn=add_temp_attn,
                        add_temp_embed=add_temp_embed,
                    )
                )
        # attribute order = the released state dict's key order
        self.attentions = nn.ModuleList(attentions) if attentions else None
        self.resnets = nn.ModuleList(resnets)
        self.temp_convs = nn.ModuleList(temp_convs) if temp_convs else None

    def _layer(self, i, hidden_states, temb, encoder_hidden_states, num_frames):
        fn = _layer_fn(
            self.resnets[i],
            self.temp_convs[i] if self.temp_convs is not None else None,
            self.attentions[i] if self.attentions is not None else None,
        )
        return self._run(fn, hidden_states, temb, encoder_hidden_states, num_frames)


class CrossAttnDownBlock3D(_Block3DBase):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int = 32,
        num_attention_heads: int = 1,
        cross_attention_dim: int = 1280,
        output_scale_factor: float = 1.0,
        downsample_padding: int = 1,
        add_downsample: bool = True,
        use_linear_projection: bool = False,
        upcast_attention: bool = False,
        add_temp_conv: bool = True,
        add_temp_attn: bool = True,
        add_temp_embed: bool = True,
        temp_conv_dropout: float = 0.1,
    ):
        super().__init__()
        io = [(in_channels if i == 0 else out_channels, out_channels) for i in range(num_layers)]
        self._build(io, temb_channels, resnet_eps, resnet_groups, dropout, resnet_act_fn, output_scale_factor,
                    resnet_time_scale_shift, add_temp_conv, temp_conv_dropout, attention_channels=out_channels,
                    num_attention_heads=num_attention_heads, cross_attention_dim=cross_attention_dim,
                    use_linear_projection=use_linear_projection, upcast_attention=upcast_attention,
                    add_temp_attn=add_temp_attn, add_temp_embed=add_temp_embed)
        self.downsamplers = (
            nn.ModuleList([Downsample2D(out_channels, use_conv=True, out_channels=out_channels,
                                        padding=downsample_padding, name="op")])
            if add_downsample else None
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
    def __init__(self, in_channels, out_channels, temb_channels, num_layers=1, dropout=0.0, resnet_eps=1e-6,
                 resnet_time_scale_shift="default", resnet_act_fn="silu", resnet_groups=32,
                 output_scale_factor=1.0, downsample_padding=1, add_downsample=True, add_temp_conv=True,
                 temp_conv_dropout=0.1, **_attention_kwargs):
        _CheckpointedBlock.__init__(self)
        io = [(in_channels if i == 0 else out_channels, out_channels) for i in range(num_layers)]
        self._build(io, temb_channels, resnet_eps, resnet_groups, dropout, resnet_act_fn, output_scale_factor,
                    resnet_time_scale_shift, add_temp_conv, temp_conv_dropout)
        self.downsamplers = (
            nn.ModuleList([Downsample2D(out_channels, use_conv=True, out_channels=out_channels,
                                        padding=downsample_padding, name="op")])
            if add_downsample else None
        )


class UNetMidBlock3DCrossAttn(_Block3DBase):
    """resnet, temporal conv, then ``num_layers`` × (transformer, resnet, temporal conv)."""

    def __init__(
        self,
        in_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int = 32,
        num_attention_heads: int = 1,
        output_scale_factor: float = 1.0,
        cross_attention_dim: int = 1280,
        use_linear_projection: bool = False,
        upcast_attention: bool = False,
        add_temp_conv: bool = True,
        add_temp_attn: bool = True,
        add_temp_embed: bool = True,
        temp_conv_dropout: float = 0.1,
    ):
        super().__init__()
        self._build([(in_channels, in_channels)] * num_layers, temb_channels, resnet_eps, resnet_groups, dropout,
                    resnet_act_fn, output_scale_factor, resnet_time_scale_shift, add_temp_conv, temp_conv_dropout,
                    attention_channels=in_channels, num_attention_heads=num_attention_heads,
                    cross_attention_dim=cross_attention_dim, use_linear_projection=use_linear_projection,
                    upcast_attention=upcast_attention, add_temp_attn=add_temp_attn, add_temp_embed=add_temp_embed)
        # the leading resnet (and its temporal conv) that has no transformer in front of it
        self.resnets.insert(0, _resnet(in_channels, in_channels, temb_channels, resnet_eps, resnet_groups, dropout,
                                       resnet_act_fn, output_scale_factor, resnet_time_scale_shift))
        if self.temp_convs is not None:
            self.temp_convs.insert(0, TemporalConvLayer(in_channels, num_layers=4, dropout=temp_conv_dropout))

    def forward(self, hidden_states, temb, encoder_hidden_states, num_frames):
        tc = self.temp_convs
        hidden_states = self._run(_layer_fn(self.resnets[0], tc[0] if tc is not None else None, None),
                                  hidden_states, temb, encoder_hidden_states, num_frames)
        for i, attention in enumerate(self.attentions):
            def layer(h, t, e, f, attention=attention, i=i):
                h = attention(h, e, f)
                h = self.resnets[i + 1](h, t, f)
                if tc is not None:
                    h = tc[i + 1](h, f)
                return h

            hidden_states = self._run(layer, hidden_states, temb, encoder_hidden_states, num_frames)
        return hidden_states


class CrossAttnUpBlock3D(_Block3DBase):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        prev_output_channel: int,
        temb_channels: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int = 32,
        num_attention_heads: int = 1,
        cross_attention_dim: int = 1280,
        output_scale_factor: float = 1.0,
        add_upsample: bool = True,
        use_linear_projection: bool = False,
        upcast_attention: bool = False,
        add_temp_conv: bool = True,
        add_temp_attn: bool = True,
        add_temp_embed: bool = True,
        temp_conv_dropout: float = 0.1,
        _with_attention: bool = True,
    ):
        super().__init__()
        io = []
        for i in range(num_layers):
            res_skip_channels = in_channels if i == num_layers - 1 else out_channels
            resnet_in_channels = prev_output_channel if i == 0 else out_channels
            io.append((resnet_in_channels + res_skip_channels, out_channels))
        attention_kwargs = {}
        if _with_attention:
            attention_kwargs = dict(
                attention_channels=out_channels, num_attention_heads=num_attention_heads,
                cross_attention_dim=cross_attention_dim, use_linear_projection=use_linear_projection,
                upcast_attention=upcast_attention, add_temp_attn=add_temp_attn, add_temp_embed=add_temp_embed,
            )
        self._build(io, temb_channels, resnet_eps, resnet_groups, dropout, resnet_act_fn, output_scale_factor,
                    resnet_time_scale_shift, add_temp_conv, temp_conv_dropout, **attention_kwargs)
        self.upsamplers = (
            nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)])
            if add_upsample else None
        )

    def forward(self, hidden_states, res_hidden_states_tuple, temb, encoder_hidden_states, num_frames,
                upsample_size=None):
        for i in range(len(self.resnets)):
            res_hidden_states = res_hidden_states_tuple[-1]
            res_hidden_states_tuple = res_hidden_states_tuple[:-1]
            hidden_states = torch.cat([hidden_states, res_hidden_states], dim=1)
            hidden_states = self._layer(i, hidden_states, temb, encoder_hidden_states, num_frames)
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states, upsample_size)
        return hidden_states


class UpBlock3D(CrossAttnUpBlock3D):
    def __init__(self, in_channels, out_channels, prev_output_channel, temb_channels, num_layers=1, dropout=0.0,
                 resnet_eps=1e-6, resnet_time_scale_shift="default", resnet_act_fn="silu", resnet_groups=32,
                 output_scale_factor=1.0, add_upsample=True, add_temp_conv=True, temp_conv_dropout=0.1,
                 **_attention_kwargs):
        super().__init__(in_channels, out_channels, prev_output_channel, temb_channels, num_layers=num_layers,
                         dropout=dropout, resnet_eps=resnet_eps, resnet_time_scale_shift=resnet_time_scale_shift,
                         resnet_act_fn=resnet_act_fn, resnet_groups=resnet_groups,
                         output_scale_factor=output_scale_factor, add_upsample=add_upsample,
                         add_temp_conv=add_temp_conv, temp_conv_dropout=temp_conv_dropout, _with_attention=False)


DOWN_BLOCKS = {"CrossAttnDownBlock3D": CrossAttnDownBlock3D, "DownBlock3D": DownBlock3D}
UP_BLOCKS = {"CrossAttnUpBlock3D": CrossAttnUpBlock3D, "UpBlock3D": UpBlock3D}
