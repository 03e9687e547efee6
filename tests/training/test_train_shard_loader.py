"""The shard loader: reads `vidrd-data build` output, splits by node and worker, skips bad samples, resumes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from vidrd_model.data import ClipSpec, LoaderConfig, ShardClipDataset, build_train_loader, expand_shard_spec
from vidrd_testing.synthetic_shards import write_synthetic_shards


def _cfg(shards, **kw) -> LoaderConfig:
    clip = ClipSpec(**{"num_frames": 4, "frame_stride": 2, "height": 32, "width": 32, **kw.pop("clip", {})})
    return LoaderConfig(shards=shards, clip=clip, **{"batch_size": 2, "num_workers": 0, "shuffle_buffer": 4, **kw})


def _take(loader, n, progress=None):
    out, it = [], iter(loader)
    for _ in range(n):
        batch = next(it)
        if progress is not None:
            progress.update(batch)
        out.append(batch)
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_shards(str(root), num_shards=4, per_shard=3, frames=8, size=48)
    return root / "shards"


def test_reads_vidrd_data_build_shards(built_shards):
    loader, progress = build_train_loader(_cfg(str(built_shards / "*.tar")))
    batches = _take(loader, 3, progress)
    for b in batches:
        assert b["pixel_values"].dtype == torch.uint8 and b["pixel_values"].shape == (2, 3, 4, 32, 32)
        assert all(c for c in b["captions"]) and all(k.startswith("photos") for k in b["keys"])
    assert progress.skipped == {}
    # pseudo-videos from images move: frames differ
    clip = batches[0]["pixel_values"][0].float()
    assert (clip[:, 0] - clip[:, -1]).abs().mean() > 1


def test_image_samples_train_as_one_frame_clips_at_the_configured_ratio(built_shards):
    loader, _ = build_train_loader(_cfg(str(built_shards), image_as_frame_ratio=1.0))
    assert _take(loader, 1)[0]["pixel_values"].shape[2] == 1
    loader, _ = build_train_loader(_cfg(str(built_shards), image_as_frame_ratio=0.5, batch_size=1))
    frames = {b["pixel_values"].shape[2] for b in _take(loader, 16)}
    assert frames == {1, 4}


def _rewrite_with_corruption(src: Path, dst: Path) -> tuple[str, str]:
    """Copy `src` shard to `dst`, truncating the first sample's mp4 and breaking the second sample's json."""
    with tarfile.open(src) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    keys = list(dict.fromkeys(m.name.split(".")[0] for m, _ in members))
    with tarfile.open(dst, "w") as out:
        for m, data in members:
            if m.name == f"{keys[0]}.mp4":
                data = data[: len(data) // 3]
            if m.name == f"{keys[1]}.json":
                data = b"{not json"
            m.size = len(data)
            out.addfile(m, io.BytesIO(data))
    return keys[0], keys[1]


def test_corrupt_samples_are_skipped_and_counted(built_shards, tmp_path):
    shards = sorted(built_shards.glob("*.tar"))
    bad_video, bad_json = _rewrite_with_corruption(shards[0], tmp_path / shards[0].name)
    for s in shards[1:]:
        (tmp_path / s.name).write_bytes(s.read_bytes())
    for s in shards:  # committed, as the loader requires (their markers copied along)
        marker = s.with_name(s.stem + "_stats.json")
        (tmp_path / marker.name).write_bytes(marker.read_bytes())
    total = sum(1 for s in shards for m in tarfile.open(s).getnames() if m.endswith(".mp4"))
    loader, progress = build_train_loader(_cfg(str(tmp_path), batch_size=1, shuffle_buffer=1))
    seen = {b["keys"][0] for b in _take(loader, total - 2 + 1, progress)}  # one epoch + one more batch
    assert bad_video not in seen and bad_json not in seen
    assert len(seen) == total - 2
    assert progress.skipped.get("decode_error", 0) >= 1 and progress.skipped.get("bad_metadata", 0) >= 1


def test_split_by_node_and_worker_gives_disjoint_shards(synthetic):
    urls_by_reader = []
    for rank in range(2):
        ds = ShardClipDataset(_cfg(str(synthetic), num_workers=2), rank=rank, world_size=2)
        loader = DataLoader(ds, batch_size=None, num_workers=2)
        urls = [set(b["urls"]) for b in _take(loader, 6)]
        urls_by_reader += [set().union(*urls[0::2]), set().union(*urls[1::2])]  # worker 0, worker 1
    assert all(len(u) == 1 for u in urls_by_reader)  # 4 shards, 4 readers
    assert len(set().union(*urls_by_reader)) == 4


@pytest.mark.parametrize("consumed", [5, 6])
def test_resume_continues_the_exact_batch_sequence(synthetic, consumed):
    cfg = _cfg(str(synthetic), num_workers=2, shuffle_buffer=5)
    straight = [b["keys"] for b in _take(build_train_loader(cfg)[0], 12)]
    loader, progress = build_train_loader(cfg)
    first = [b["keys"] for b in _take(loader, consumed, progress)]
    resumed_loader, _ = build_train_loader(cfg, resume=progress.state_dict())
    rest = [b["keys"] for b in _take(resumed_loader, 12 - consumed)]
    assert first + rest == straight


def test_shard_spec_forms(synthetic):
    all_four = expand_shard_spec(str(synthetic / "*.tar"))
    assert len(all_four) == 4
    assert expand_shard_spec(str(synthetic / "synthetic-{000000..000003}.tar")) == all_four
    assert expand_shard_spec(str(synthetic)) == all_four
    assert expand_shard_spec([all_four[0], all_four[1]]) == all_four[:2]
    assert expand_shard_spec("https://example.com/s-{0..1}.tar") == ["https://example.com/s-0.tar", "https://example.com/s-1.tar"]
    with pytest.raises(FileNotFoundError, match="vidrd-data build"):
        expand_shard_spec(str(synthetic / "nope-000000.tar"))
