import types

import pytest
import torch


class StandInUNet(torch.nn.Module):
    """A tiny deterministic video denoiser with the UNet's call signature; it mixes frames (temporal conv), so
    overwriting some frames changes all of them."""

    def __init__(self, channels: int = 4, context_dim: int = 8):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv3d(channels, channels, (3, 3, 3), padding=1)
        self.proj = torch.nn.Linear(context_dim, channels)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        self.calls = 0

    def forward(self, sample, timestep, encoder_hidden_states):
        self.calls += 1
        t = torch.as_tensor(timestep, dtype=sample.dtype).reshape(-1)[0] / 1000.0
        ctx = self.proj(encoder_hidden_states.mean(1))[:, :, None, None, None]
        return types.SimpleNamespace(sample=torch.tanh(self.conv(sample)) * (1 - t) + ctx * t + 0.1 * sample)


@pytest.fixture
def standin_unet():
    return StandInUNet().eval()


@pytest.fixture
def text_embeds():
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 5, 8, generator=g), torch.randn(1, 5, 8, generator=g)


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models: one intra-op thread (see tests/conftest.py)."""
