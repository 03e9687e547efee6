"""Choose what trains by parameter name; everything else is frozen (requires_grad False)."""

from __future__ import annotations

import re

import torch


def select_trainable(module: torch.nn.Module, patterns: list[str]) -> dict[str, torch.nn.Parameter]:
    """Mark parameters whose name matches any regex in `patterns` trainable, freeze the rest, return the trainable."""
    if not patterns:
        raise ValueError("model.trainable_patterns is empty: name what to train, e.g. ['\\.temp_', '\\.attn1\\.']")
    compiled = [re.compile(p) for p in patterns]
    trainable = {}
    for name, param in module.named_parameters():
        hit = any(c.search(name) for c in compiled)
        param.requires_grad_(hit)
        if hit:
            trainable[name] = param
    if not trainable:
        examples = ", ".join(name for name, _ in list(module.named_parameters())[:5])
        raise ValueError(f"no parameter of {type(module).__name__} matches {patterns}; names look like: {examples}")
    return trainable


def describe(module: torch.nn.Module, trainable: dict) -> str:
    total = sum(p.numel() for p in module.parameters())
    train = sum(p.numel() for p in trainable.values())
    return f"{type(module).__name__}: {train / 1e6:.2f}M of {total / 1e6:.2f}M parameters trainable ({len(trainable)} tensors)"
