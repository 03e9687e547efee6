"""Gradient checkpointing changes memory, not numbers; training gradients reach every temporal layer."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidrd_model.models import TemporalAutoencoderKL, VidRDUNet3DConditionModel

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "vidrd_reference"


@pytest.fixture(scope="module")
def meta():
    return json.loads((FIXTURES / "meta.json").read_text())


def _loss_and_grads(model, inputs, checkpointing):
    if checkpointing:
        model.enable_gradient_checkpointing()
    else:
        model.disable_gradient_checkpointing()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # the same dropout masks in both runs (checkpointing replays the RNG state)
    out = model(*inputs)
    out = out.sample if hasattr(out, "sample") else out
    loss = (out.float() ** 2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_unet_checkpointing_equivalence_and_temporal_gradients(meta):
    model = VidRDUNet3DConditionModel.from_config(meta["unet3d_config"]).train()  # dropout on
    model.load_state_dict(load_file(FIXTURES / "unet3d_state_dict.safetensors"))  # temporal layers active
    gen = torch.Generator().manual_seed(1)
    inputs = (torch.randn(1, 4, 3, 8, 8, generator=gen), torch.tensor([300]), torch.randn(1, 7, 32, generator=gen))

    loss_a, grads_a = _loss_and_grads(model, inputs, checkpointing=False)
    loss_b, grads_b = _loss_and_grads(model, inputs, checkpointing=True)
    assert all(b.gradient_checkpointing for b in [*model.down_blocks, model.mid_block, *model.up_blocks])
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-6, atol=0)
    assert grads_a.keys() == grads_b.keys() == {n for n, _ in model.named_parameters()}
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6, msg=name)

    temporal = dict(model.temporal_parameters())
    assert len(temporal) == 352 + 16 * 7  # temp_convs tensors + (norm: 2, attention: 5) of 16 transformer blocks
    for name in temporal:
        assert grads_a[name].abs().sum() > 0, f"no gradient reaches {name}"


def test_fresh_temporal_layers_receive_gradients(tmp_path):
    """Freshly inflated (identity) temporal layers still get a gradient path: their zero output layers
    have nonzero gradients, so training moves them."""
    model = VidRDUNet3DConditionModel.from_unet2d(FIXTURES / "sd_tiny_unet2d").train()
    inputs = (torch.randn(1, 4, 2, 8, 8), torch.tensor([10]), torch.randn(1, 5, 32))
    _, grads = _loss_and_grads(model, inputs, checkpointing=False)
    for name, _ in model.temporal_parameters():
        assert name in grads, name
        if name.endswith("convs.15.weight") or ".temp_attn.to_out.0." in name:
            assert grads[name].abs().sum() > 0, name


def test_vae_decoder_checkpointing(meta):
    vae = TemporalAutoencoderKL.from_config(meta["vae_config"]).train()
    vae.load_state_dict(load_file(FIXTURES / "temporal_vae_state_dict.safetensors"))
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    run = lambda m, z: m.decode(z, num_frames=4).sample  # noqa: E731
    vae.disable_gradient_checkpointing()
    vae.zero_grad()
    run(vae, z).square().mean().backward()
    grads = {n: p.grad.clone() for n, p in vae.decoder.named_parameters()}
    vae.enable_gradient_checkpointing()
    vae.zero_grad()
    run(vae, z).square().mean().backward()
    for n, p in vae.decoder.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6, msg=n)
    assert all(grads[n[len("decoder."):]].abs().sum() > 0 for n, _ in vae.temporal_parameters())
