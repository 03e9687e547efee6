"""`vidrd-model train --num-workers 2`: data-parallel on Ray Train (CPU, gloo); the ranks read disjoint shards."""

from __future__ import annotations

import json

from vidrd_model.cli import main


def test_two_worker_ray_train_run_reads_disjoint_shards(built_shards, tiny_model, tmp_path, ray_session):
    out = tmp_path / "ray_run"
    code = main(["train", "--shards", str(built_shards / "*.tar"), "--pretrained", str(tiny_model),
                 "--output-dir", str(out), "--num-workers", "2", "--cpus-per-worker", "0.5",
                 "--max-steps", "2", "--batch-size", "1", "--num-frames", "4", "--resolution", "32",
                 "--dataloader-workers", "0", "--warmup-steps", "0", "--set", "run.logger=csv"])
    assert code == 0
    reports = [json.loads((out / "logs" / f"data_rank{r}.json").read_text()) for r in (0, 1)]
    shards = [set(r["shards_read"]) for r in reports]
    assert all(r["step"] == 2 for r in reports)
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert (out / "checkpoints" / "checkpoint-00000002" / "unet").is_dir()
    assert (out / "model" / "unet").is_dir()
