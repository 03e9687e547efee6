"""Prompt -> text-encoder hidden states (SD 2.x: the text encoder's last hidden state, max-length padding)."""

from __future__ import annotations

import torch


@torch.no_grad()
def encode_prompt(tokenizer, text_encoder, prompt: str, device=None) -> torch.Tensor:
    """(1, tokenizer.model_max_length, hidden) embeddings of one prompt, in the text encoder's dtype."""
    device = device if device is not None else text_encoder.device
    tokens = tokenizer(
        [prompt],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        mask = tokens.attention_mask.to(device)
    return text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0]
