"""The layers VidRD adds to Stable Diffusion: temporal convolutions, frame-position embeddings and the
transformer block with temporal self-attention.

Shapes: spatial layers work on frames stacked in the batch, ``(batch * frames, channels, height, width)``;
temporal layers regroup them into clips, ``(batch, channels, frames, height, width)``. Frames of one clip
are consecutive in the stacked batch (batch-major), as in the released implementation.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def frames_to_clip(hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(b*f, c, h, w)`` -> ``(b, c, f, h, w)``."""
    bf, c, h, w = hidden_states.shape
    return hidden_states.reshape(bf // num_frames, num_frames, c, h, w).permute(0, 2, 1, 3, 4)


def clip_to_frames(hidden_states: torch.Tensor) -> torch.Tensor:
    """``(b, c, f, h, w)`` -> ``(b*f, c, h, w)``."""
    b, c, f, h, w = hidden_states.shape
    return hidden_states.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def sinusoidal_frame_embedding(num_frames: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Transformer-style position encoding of frame indices, ``(num_frames, dim)``: sin on even
    channels, cos on odd ones, frequencies 10000^(-2i/dim). Position 0 is (0, 1, 0, 1, ...)."""
    if dim % 2:
        raise ValueError(f"frame position embedding needs an even channel count, got {dim}")
    position = torch.arange(num_frames, device=device, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    emb = torch.empty(num_frames, dim, device=device, dtype=torch.float32)
    emb[:, 0::2] = torch.sin(position * inv_freq)
    emb[:, 1::2] = torch.cos(position * inv_freq)
    return emb.to(dtype) if dtype is not None else emb


class TemporalConvLayer(nn.Module):
    """``num_layers`` × [GroupNorm, SiLU, Dropout, Conv3d (3,1,1)] over the frame axis, residual.

    The sub-layers live in one flat ``convs`` list so that parameter names are the released
    checkpoint's (``convs.0`` GroupNorm, ``convs.3`` Conv3d, ``convs.4`` GroupNorm, ...). The last conv
    starts at zero so a freshly inflated layer is the identity. GroupNorm statistics span all frames
    of a clip, as released.
    """

    def __init__(self, channels: int, num_layers: int = 4, dropout: float = 0.1, norm_num_groups: int = 32):
        super().__init__()
        layers = []
        for _ in range(num_layers):
            layers += [
                nn.GroupNorm(norm_num_groups, channels),
                nn.SiLU(),
                nn.Dropout(dropout),
                nn.Conv3d(channels, channels, kernel_size=(3, 1, 1), padding=(1, 0, 0)),
            ]
        self.convs = nn.ModuleList(layers)
        zero_module(self.convs[-1])

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``hidden_states``: ``(b*f, c, h, w)``; returns the same shape. A single frame passes through
        unchanged (the image path)."""
        if num_frames <= 1:
            return hidden_states
        identity = hidden_states
        x = frames_to_clip(hidden_states, num_frames)
        for layer in self.convs:
            x = layer(x)
        return identity + clip_to_frames(x)


class VidRDTransformerBlock(nn.Module):
    """SD 2.x's BasicTransformerBlock (self-attention, cross-attention, GEGLU feed-forward, pre-LayerNorm)
    with VidRD's temporal step between cross-attention and feed-forward: add the sinusoidal embedding of
    each frame's index, then self-attention across the frames of each spatial position (``temp_norm``,
    ``temp_attn`` with zero-initialised output projection), residual.
    """

    def __init__(
        self,
        dim: int,
        num_attention_heads: int,
        attention_head_dim: int,
        cross_attention_dim: int | None = None,
        dropout: float = 0.0,
        activation_fn: str = "geglu",
        attention_bias: bool = False,
        upcast_attention: bool = False,
        add_temp_attn: bool = True,
        add_temp_embed: bool = True,
    ):
        super().__init__()
        self.add_temp_embed = add_temp_embed

        def attention(cross_dim=None):
            return Attention(
                query_dim=dim,
                cross_attention_dim=cross_dim,
                heads=num_attention_heads,
                dim_head=attention_head_dim,
                dropout=dropout,
                bias=attention_bias,
                upcast_attention=upcast_attention,
                processor=AttnProcessor2_0(),  # torch scaled_dot_product_attention
            )

        # registration order as in the released block: attn1, temp_norm, temp_attn, norm1, attn2, norm2, ff, norm3
        self.attn1 = attention()
        if add_temp_attn:
            self.temp_norm = nn.LayerNorm(dim)
            self.temp_attn = attention()
            zero_module(self.temp_attn.to_out)
        else:
            self.temp_norm = None
            self.temp_attn = None
        self.norm1 = nn.LayerNorm(dim)
        self.attn2 = attention(cross_attention_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn=activation_fn)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None, num_frames: int
    ) -> torch.Tensor:
        """``hidden_states``: ``(b*f, tokens, dim)``; ``encoder_hidden_states``: ``(b*f, text_tokens, dim)``."""
        hidden_states = self.attn1(self.norm1(hidden_states)) + hidden_states
        hidden_states = self.attn2(self.norm2(hidden_states), encoder_hidden_states=encoder_hidden_states) + hidden_states

        if self.temp_attn is not None:
            bf, tokens, dim = hidden_states.shape
            batch = bf // num_frames
            clip = hidden_states.reshape(batch, num_frames, tokens, dim)
            if self.add_temp_embed:
                # the released model adds this even to single frames (its image path keeps the
                # embedded states and drops only the attention), so we do too
                pos = sinusoidal_frame_embedding(num_frames, dim, hidden_states.device, hidden_states.dtype)
                clip = clip + pos[None, :, None, :]
            if num_frames > 1:
                seq = clip.permute(0, 2, 1, 3).reshape(batch * tokens, num_frames, dim)
                seq = self.temp_attn(self.temp_norm(seq)) + seq
                clip = seq.reshape(batch, tokens, num_frames, dim).permute(0, 2, 1, 3)
            hidden_states = clip.reshape(bf, tokens, dim)

        hidden_states = self.ff(self.norm3(hidden_states)) + hidden_states
        return hidden_states


class VidRDTransformer(nn.Module):
    """SD 2.x's Transformer2DModel (GroupNorm, ``proj_in``, blocks, ``proj_out``, residual) over stacked
    frames, with :class:`VidRDTransformerBlock` blocks."""

    def __init__(
        self,
        num_attention_heads: int,
        attention_head_dim: int,
        in_channels: int,
        num_layers: int = 1,
        cross_attention_dim: int | None = None,
        norm_num_groups: int = 32,
        use_linear_projection: bool = True,
        upcast_attention: bool = False,
        add_temp_attn: bool = True,
        add_temp_embed: bool = True,
    ):
        super().__init__()
        inner_dim = num_attention_heads * attention_head_dim
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6, affine=True)
        if use_linear_projection:
            self.proj_in = nn.Linear(in_channels, inner_dim)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner_dim, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            VidRDTransformerBlock(
                inner_dim,
                num_attention_heads,
                attention_head_dim,
                cross_attention_dim=cross_attention_dim,
                upcast_attention=upcast_attention,
                add_temp_attn=add_temp_attn,
                add_temp_embed=add_temp_embed,
            )
            for _ in range(num_layers)
        )
        if use_linear_projection:
            self.proj_out = nn.Linear(inner_dim, in_channels)
        else:
            self.proj_out = nn.Conv2d(inner_dim, in_channels, kernel_size=1)

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None, num_frames: int):
        bf, _, height, width = hidden_states.shape
        residual = hidden_states
        hidden_states = self.norm(hidden_states)
        if not self.use_linear_projection:
            hidden_states = self.proj_in(hidden_states)
        hidden_states = hidden_states.permute(0, 2, 3, 1).reshape(bf, height * width, -1)
        if self.use_linear_projection:
            hidden_states = self.proj_in(hidden_states)

        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, encoder_hidden_states, num_frames)

        if self.use_linear_projection:
            hidden_states = self.proj_out(hidden_states)
        hidden_states = hidden_states.reshape(bf, height, width, -1).permute(0, 3, 1, 2).contiguous()
        if not self.use_linear_projection:
            hidden_states = self.proj_out(hidden_states)
        return hidden_states + residual


def clip_group_norm(norm: nn.GroupNorm, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Apply ``norm`` with statistics over all frames of each clip (the released UNet normalises its
    5-D activations this way), to frames stacked in the batch."""
    if num_frames == 1:
        return norm(hidden_states)
    return clip_to_frames(norm(frames_to_clip(hidden_states, num_frames)))
