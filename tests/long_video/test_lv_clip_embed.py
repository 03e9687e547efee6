"""open_clip embeddings of shot boundary frames: a custom-config checkpoint loads like a real one."""

from __future__ import annotations

import numpy as np
import pytest

from vidrd_testing.demo_videos_long import prepare_tiny_clip
from vidrd_data.items import Item
from vidrd_data.stages.base import StageContext, get_stage, make_stage


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return prepare_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_embed_shots_with_open_clip_gives_unit_vectors_per_shot_frame(tiny_clip):
    ctx = StageContext(clip={"fps": 8, "size": [64, 64], "frames": 8}, models={"clip": tiny_clip})
    cls = get_stage("embed_shots")
    cls.check({"model": "clip"}, ctx)
    stage = make_stage("embed_shots", {"model": "clip"}, ctx)
    rng = np.random.default_rng(0)
    items = [Item(key=f"v{i}", source="s", input_id=str(i),
                  data={"shot_frames": rng.integers(0, 255, (n, 2, 224, 224, 3), np.uint8)},
                  meta={"segmentation": {}}) for i, n in enumerate((3, 1))]
    out = stage.process_batch(items)
    assert [it.data["shot_emb"].shape for it in out] == [(3, 2, 32), (1, 2, 32)]
    assert np.allclose(np.linalg.norm(out[0].data["shot_emb"], axis=-1), 1, atol=1e-5)
    assert "shot_frames" not in out[0].data
    assert out[0].meta["segmentation"]["embedder"]["name"] == "vidrd-tiny-clip"


def test_missing_clip_weights_fail_before_any_work(tmp_path):
    cls = get_stage("embed_shots")
    ctx = StageContext(clip={}, models={"clip": {"name": "ViT-L-14", "checkpoint": str(tmp_path / "clip.bin")}})
    with pytest.raises(FileNotFoundError, match="CLIP checkpoint not found"):
        cls.check({"model": "clip"}, ctx)
    with pytest.raises(ValueError, match="models.clip.name is required"):
        cls.check({"model": "clip"}, StageContext(clip={}))
    cls.check({"model": "color_histogram"}, StageContext(clip={}))  # needs no model
