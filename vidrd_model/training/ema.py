"""Exponential moving average of the trainable parameters (the frozen ones never change, so they need none)."""

from __future__ import annotations

import contextlib

import torch


class ParameterEMA:
    def __init__(self, named_params: dict[str, torch.nn.Parameter], decay: float = 0.9999, warmup: bool = True):
        self.decay, self.warmup = decay, warmup
        self.num_updates = 0
        self.shadow = {name: p.detach().clone().float() for name, p in named_params.items()}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, named_params: dict[str, torch.nn.Parameter]) -> None:
        decay = self.current_decay()
        for name, p in named_params.items():
            self.shadow[name].lerp_(p.detach().float(), 1 - decay)
        self.num_updates += 1

    @contextlib.contextmanager
    @torch.no_grad()
    def swapped_in(self, named_params: dict[str, torch.nn.Parameter]):
        """Temporarily load the averaged weights (to save or sample), then restore the trained ones."""
        backup = {name: p.detach().clone() for name, p in named_params.items()}
        for name, p in named_params.items():
            p.copy_(self.shadow[name].to(p.dtype))
        try:
            yield
        finally:
            for name, p in named_params.items():
                p.copy_(backup[name])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} trainable parameters (e.g. {sorted(missing)[0]}): "
                           "the checkpoint was made with other trainable_patterns")
        self.num_updates = state["num_updates"]
        for name in self.shadow:
            self.shadow[name].copy_(state["shadow"][name])
