"""LPIPS (Zhang et al. 2018) on a torchvision VGG16 whose weights the user provides (never downloaded).

Distance = Σ_layers mean_hw( Σ_c w_c · (f̂₁ − f̂₂)² ), with f̂ the channel-normalised features at relu1_2,
relu2_2, relu3_3, relu4_3 and relu5_3. With LPIPS' learned linear weights (`lpips` package's `vgg.pth`) this
is LPIPS-VGG; without them w_c = 1/C (the unlearned "baseline" variant of the paper).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

_SLICES = (4, 9, 16, 23, 30)  # end of each VGG16 feature block (after relu1_2 ... relu5_3)
_CHANNELS = (64, 128, 256, 512, 512)


def _load(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS weights not found: {path}. Pass torchvision's vgg16 state dict "
                                "(e.g. vgg16-397923af.pth) or leave vae_loss.lpips_vgg_path empty to train without LPIPS")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


class LPIPS(nn.Module):
    def __init__(self, vgg_path: str | Path, linear_path: str | Path | None = None):
        super().__init__()
        from torchvision.models import vgg16
        vgg = vgg16(weights=None)
        vgg.load_state_dict(_load(vgg_path))
        features = vgg.features[: _SLICES[-1]].eval()
        self.blocks = nn.ModuleList(features[a:b] for a, b in zip((0,) + _SLICES[:-1], _SLICES))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        weights = [torch.full((1, c, 1, 1), 1.0 / c) for c in _CHANNELS]
        if linear_path:
            lin = _load(linear_path)
            weights = [lin[f"lin{i}.model.1.weight"].float() for i in range(len(_CHANNELS))]
        for i, w in enumerate(weights):
            self.register_buffer(f"w{i}", w)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y in [-1, 1], (N, 3, H, W) -> mean distance (scalar)."""
        x, y = (x - self.shift) / self.scale, (y - self.shift) / self.scale
        total = 0.0
        for i, block in enumerate(self.blocks):
            x, y = block(x), block(y)
            nx = x / (x.norm(dim=1, keepdim=True) + 1e-10)
            ny = y / (y.norm(dim=1, keepdim=True) + 1e-10)
            total = total + (getattr(self, f"w{i}") * (nx - ny) ** 2).sum(1).mean()
        return total
