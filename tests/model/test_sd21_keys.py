"""Built with SD 2.1-base's configuration, our UNet and VAE have exactly the released checkpoint's
parameter names and shapes (built on the meta device: no memory needed)."""

import json
from pathlib import Path

import torch

from vidrd_model.models import (
    SD21_BASE_VAE_CONFIG,
    TemporalAutoencoderKL,
    VidRDUNet3DConditionModel,
    is_temporal_key,
    sd21_base_vidrd_unet_config,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "vidrd_reference"


def _shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_full_size_names_and_shapes():
    ref = json.loads((FIXTURES / "sd21_base_vidrd_keys.json").read_text())
    with torch.device("meta"):
        unet = VidRDUNet3DConditionModel.from_config(sd21_base_vidrd_unet_config())
        vae = TemporalAutoencoderKL.from_config(SD21_BASE_VAE_CONFIG)
    for name, model in [("unet", unet), ("vae", vae)]:
        ours = _shapes(model)
        assert sorted(set(ref[name]) - set(ours)) == [], f"{name}: missing"
        assert sorted(set(ours) - set(ref[name])) == [], f"{name}: unexpected"
        assert ours == ref[name], name
    counts = ref["counts"]
    assert sum(p.numel() for p in unet.parameters()) == counts["unet_params"]
    assert sum(p.numel() for n, p in unet.named_parameters() if is_temporal_key("." + n)) == counts["unet_temporal_params"]
    assert sum(p.numel() for p in vae.parameters()) == counts["vae_params"]
    assert sum(p.numel() for _, p in vae.temporal_parameters()) == counts["vae_temporal_params"]
