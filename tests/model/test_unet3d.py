"""The VidRD UNet reproduces the released implementation's outputs (reference fixtures)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidrd_model.models import CheckpointMismatchError, VidRDUNet3DConditionModel

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "vidrd_reference"
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def meta():
    return json.loads((FIXTURES / "meta.json").read_text())


@pytest.fixture(scope="module")
def io():
    return load_file(FIXTURES / "unet3d_io.safetensors")


@pytest.fixture(scope="module")
def released_unet(meta):
    model = VidRDUNet3DConditionModel.from_config(meta["unet3d_config"]).eval()
    missing, unexpected = model.load_state_dict(load_file(FIXTURES / "unet3d_state_dict.safetensors"), strict=True)
    return model


def _run(model, io, sample_key):
    with torch.no_grad():
        return model(io[sample_key], io["timestep"], io["encoder_hidden_states"]).sample


def test_released_weights_reproduce_video_and_image_outputs(released_unet, io):
    out = _run(released_unet, io, "sample")
    assert out.shape == io["unet3d_out"].shape
    torch.testing.assert_close(out, io["unet3d_out"], **TOL)
    torch.testing.assert_close(_run(released_unet, io, "sample_1frame"), io["unet3d_out_1frame"], **TOL)


def test_inflation_from_sd_unet2d_folder(io):
    model = VidRDUNet3DConditionModel.from_unet2d(FIXTURES / "sd_tiny_unet2d").eval()
    assert model.config.down_block_types[0] == "CrossAttnDownBlock3D"
    torch.testing.assert_close(_run(model, io, "sample"), io["inflated_out"], **TOL)
    torch.testing.assert_close(_run(model, io, "sample_1frame"), io["inflated_out_1frame"], **TOL)
    # fresh temporal layers: temporal convs end in zeros, temporal attention outputs zero
    for name, p in model.temporal_parameters():
        if name.endswith("convs.15.weight") or ".temp_attn.to_out." in name:
            assert torch.count_nonzero(p) == 0, name


def test_save_and_strict_from_pretrained(released_unet, io, tmp_path):
    released_unet.save_pretrained(tmp_path / "unet")
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    again = VidRDUNet3DConditionModel.from_pretrained(tmp_path / "unet").eval()
    torch.testing.assert_close(_run(again, io, "sample_1frame"), io["unet3d_out_1frame"], **TOL)

    # a checkpoint that does not fit the configuration is refused, naming the keys
    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    config["add_temp_conv"] = False
    (tmp_path / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match=r"(?s)unexpected keys.*temp_convs"):
        VidRDUNet3DConditionModel.from_pretrained(tmp_path / "unet")


def test_inflation_refuses_unsupported_unets():
    with pytest.raises(ValueError, match="only_cross_attention"):
        VidRDUNet3DConditionModel.config_from_unet2d({"only_cross_attention": True, "attention_head_dim": 8,
                                                       "down_block_types": [], "up_block_types": []})
    with pytest.raises(FileNotFoundError, match="no SD 2.x UNet"):
        VidRDUNet3DConditionModel.from_unet2d(FIXTURES / "does_not_exist")


def test_bf16_forward(released_unet, io):
    model = VidRDUNet3DConditionModel.from_config(released_unet.config).eval()
    model.load_state_dict(released_unet.state_dict())
    model.to(torch.bfloat16)
    with torch.no_grad():
        sample, text = io["sample"][:1, :, :2, :8, :8], io["encoder_hidden_states"][:1]
        out = model(sample.bfloat16(), io["timestep"][:1], text.bfloat16()).sample
        ref = released_unet(sample, io["timestep"][:1], text).sample
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().mean() < 0.05 * ref.abs().mean()
