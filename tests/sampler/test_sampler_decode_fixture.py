"""Clip decoding through the temporal VAE: both modes against the released implementation's outputs."""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidrd_model.sampling.decode import decode_clip

FIXTURES = Path(
    os.environ.get("VIDRD_FIXTURES", Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures")
) / "vidrd_reference"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"reference fixtures not found at {FIXTURES}")


@pytest.mark.parametrize("mode,key", [("temporal", "decoded_num_frames_8"), ("per-frame", "decoded_num_frames_1")])
def test_decode_modes_match_reference(mode, key):
    from vidrd_model.models import TemporalAutoencoderKL

    meta = json.loads((FIXTURES / "meta.json").read_text())
    vae = TemporalAutoencoderKL.from_config(meta["vae_config"])
    vae.load_state_dict(load_file(FIXTURES / "temporal_vae_state_dict.safetensors"), strict=True)
    vae.eval()
    io = load_file(FIXTURES / "temporal_vae_io.safetensors")
    z = io["z"]  # (2 clips x 8 frames, 4, 8, 8), frames stacked in the batch
    latents = z.reshape(2, 8, *z.shape[1:]).permute(0, 2, 1, 3, 4) * vae.config.scaling_factor
    with torch.no_grad():
        frames = decode_clip(vae, latents, mode=mode)
    want = io[key].reshape(2, 8, *io[key].shape[1:])
    torch.testing.assert_close(frames, want, atol=1e-4, rtol=1e-4)
