"""Fixtures of the trainer tests: shards built by `vidrd-data build` from a tiny image-text manifest, and a tiny
random VidRD model folder. Both are built once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _photo(seed: int, size=(96, 80)) -> Image.Image:
    """Structured content (gradients + discs), so pseudo-motion and the codec behave as on photos."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, np.full_like(x, rng.integers(0, 255))], -1).astype(np.uint8)
    for _ in range(3):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(10, 25)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 255, 3)
    return Image.fromarray(img)


def build_tiny_shards(root: Path, num_images: int = 8, per_shard: int = 4) -> Path:
    """Images with sidecar captions -> `vidrd-data build` -> OUT/shards/*.tar (8 frames, 64x64, 8 fps)."""
    from vidrd_data.build import build

    photos = root / "photos"
    photos.mkdir(parents=True)
    for i in range(num_images):
        _photo(i).save(photos / f"img{i:03d}.jpg", quality=92)
        (photos / f"img{i:03d}.txt").write_text(f"a test pattern with {i % 3 + 1} round shapes\n")
    manifest = {
        "name": "trainer-test", "output": str(root / "out"), "clip": {"fps": 8, "size": [64, 64], "frames": 8},
        "shard": {"max_samples": per_shard},
        "sources": [{"name": "photos", "kind": "image_text", "recipe": str(REPO / "pipelines/image_text.yaml"),
                     "input": {"format": "folder", "root": str(photos)}}],
    }
    path = root / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    report = build(path, progress=False, out=lambda s: None)
    shards = sorted((root / "out" / "shards").glob("*.tar"))
    assert len(shards) >= 2, f"expected >= 2 shards, got {shards} ({report})"
    return root / "out" / "shards"


@pytest.fixture(scope="session")
def built_shards(tmp_path_factory, ray_session) -> Path:
    """The shard folder written by `vidrd-data build` (2 shards x 4 pseudo-video samples)."""
    return build_tiny_shards(tmp_path_factory.mktemp("trainer_shards"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random VidRD model folder (unet, vae, text_encoder, tokenizer, scheduler)."""
    from vidrd_testing.tiny_vidrd import make_tiny_vidrd

    path = tmp_path_factory.mktemp("tiny_vidrd") / "model"
    make_tiny_vidrd(path)
    return path


def tiny_train_config(shards, model_dir, output_dir, **sections):
    """A config small enough for CPU tests: 4 frames of 32x32 (4x4 latents), batch 2, no dataloader workers."""
    from vidrd_model.training.config import _merge, load_config

    base = {
        "model": {"pretrained": str(model_dir)},
        "data": {"shards": str(shards), "clip": {"num_frames": 4, "frame_stride": 2, "height": 32, "width": 32},
                 "batch_size": 2, "num_workers": 0, "shuffle_buffer": 8},
        "optim": {"warmup_steps": 0, "learning_rate": 1e-3},
        "run": {"output_dir": str(output_dir), "max_steps": 4, "checkpoint_every": 0, "log_every": 1,
                "logger": "csv", "validation_every": 0},
    }
    return load_config("train_default.yaml", None, _merge(base, sections))
