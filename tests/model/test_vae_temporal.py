"""The temporal-aware VAE reproduces the released implementation (reference fixtures)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidrd_model.models import TemporalAutoencoderKL
from vidrd_model.models.vae_temporal import to_legacy_attention_names

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "vidrd_reference"
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def vae():
    meta = json.loads((FIXTURES / "meta.json").read_text())
    model = TemporalAutoencoderKL.from_config(meta["vae_config"]).eval()
    model.load_state_dict(load_file(FIXTURES / "temporal_vae_state_dict.safetensors"), strict=True)
    return model


@pytest.fixture(scope="module")
def io():
    return load_file(FIXTURES / "temporal_vae_io.safetensors")


def test_decode_clips_and_frames(vae, io):
    with torch.no_grad():
        torch.testing.assert_close(vae.decode(io["z"], num_frames=8).sample, io["decoded_num_frames_8"], **TOL)
        torch.testing.assert_close(vae.decode(io["z"], num_frames=1).sample, io["decoded_num_frames_1"], **TOL)
        # a 5-D clip batch decodes the same way and keeps its layout
        clip = io["z"][8:].reshape(1, 8, 4, 8, 8).permute(0, 2, 1, 3, 4)
        video = vae.decode(clip).sample
    assert video.shape == (1, 3, 8, 64, 64)
    torch.testing.assert_close(video[0].transpose(0, 1), io["decoded_num_frames_8"][8:], **TOL)
    with pytest.raises(ValueError, match="num_frames=3"):
        vae.decode(io["z"], num_frames=3)


def test_encoder_is_sds(vae, io):
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(io["image"]).latent_dist.mean, io["encoded_mean"], **TOL)


def test_from_sd_vae_and_round_trip(vae, io, tmp_path):
    from diffusers import AutoencoderKL

    # SD's VAE in current diffusers naming: weights map one to one, temporal layers start as identity
    cfg = {k: vae.config[k] for k in ["in_channels", "out_channels", "down_block_types", "up_block_types",
                                      "block_out_channels", "layers_per_block", "latent_channels",
                                      "norm_num_groups", "sample_size", "scaling_factor"]}
    sd_vae = AutoencoderKL(**cfg).eval()
    spatial = {k: v for k, v in vae.state_dict().items() if ".temp_convs." not in k}
    renamed = {}
    for k, v in spatial.items():
        for old, new in [(".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")]:
            k = k.replace(old, new)
        renamed[k] = v
    sd_vae.load_state_dict(renamed, strict=True)
    sd_vae.save_pretrained(tmp_path / "sd_vae")
    inflated = TemporalAutoencoderKL.from_vae2d(tmp_path / "sd_vae").eval()
    z = io["z"][:4, :, :4, :4]
    with torch.no_grad():
        torch.testing.assert_close(inflated.decode(z, num_frames=4).sample, sd_vae.decode(z).sample, **TOL)

    vae.save_pretrained(tmp_path / "vae")
    again = TemporalAutoencoderKL.from_pretrained(tmp_path / "vae").eval()
    assert set(again.state_dict()) == set(vae.state_dict())
    assert to_legacy_attention_names({"decoder.mid_block.attentions.0.to_out.0.weight": 1}) == {
        "decoder.mid_block.attentions.0.proj_attn.weight": 1
    }
