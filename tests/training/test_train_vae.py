"""`vidrd-model train-vae`: only the decoder's temporal layers change; the result loads as the sampler's VAE."""

from __future__ import annotations

import torch

from vidrd_model.cli import main
from vidrd_model.models import TemporalAutoencoderKL


def test_train_vae_changes_only_the_temporal_decoder(built_shards, tiny_model, tmp_path):
    out = tmp_path / "vae_run"
    code = main(["train-vae", "--shards", str(built_shards), "--pretrained", str(tiny_model),
                 "--output-dir", str(out), "--max-steps", "2", "--batch-size", "1", "--num-frames", "4",
                 "--resolution", "32", "--dataloader-workers", "0", "--learning-rate", "1e-3", "--log-every", "1",
                 "--set", "run.logger=csv"])
    assert code == 0
    before = TemporalAutoencoderKL.from_pretrained(tiny_model / "vae").state_dict()
    after = TemporalAutoencoderKL.from_pretrained(out / "model" / "vae").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("temp_conv" in k for k in changed)
    assert all(torch.equal(before[k], after[k]) for k in before if "temp_conv" not in k)
    header, *rows = (out / "logs" / "metrics.csv").read_text().splitlines()
    assert "loss" in header and len(rows) == 2
