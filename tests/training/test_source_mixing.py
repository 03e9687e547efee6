"""Source mixing by weight (from dataset_info.json or --mix), measured against the weights with a χ² test;
only committed shards are read; resume stays exact with several sources and one-frame image buckets."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from vidrd_model.data import ClipSpec, LoaderConfig, build_train_loader
from vidrd_model.data.shard_spec import training_shards
from vidrd_model.data.source_mix import MixError, choose_source, cumulative, parse_mix
from vidrd_testing.synthetic_shards import write_synthetic_shards

# χ² critical values at p = 0.001: a correct sampler fails this test once in a thousand seeds
CHI2_CRIT_P001 = {1: 10.83, 2: 13.82}
WEIGHTS = {"big": 0.5, "mid": 0.3, "small": 0.2}


def chi_square(counts: Counter, weights: dict[str, float]) -> float:
    n = sum(counts.values())
    total = sum(weights.values())
    return sum((counts.get(k, 0) - n * w / total) ** 2 / (n * w / total) for k, w in weights.items())


def _cfg(shards, **kw) -> LoaderConfig:
    clip = ClipSpec(num_frames=4, frame_stride=1, height=32, width=32)
    return LoaderConfig(shards=shards, clip=clip, **{"batch_size": 4, "num_workers": 0, "shuffle_buffer": 2, **kw})


@pytest.fixture(scope="module")
def mixed_output(tmp_path_factory) -> Path:
    """Three sources of very different sizes (6, 2 and 1 samples) and a dataset_info.json written by the data
    side's own writer from a manifest giving them weights 0.5 / 0.3 / 0.2."""
    from vidrd_data.sink import write_dataset_info

    out = tmp_path_factory.mktemp("mixed")
    write_synthetic_shards(str(out), "big", num_shards=2, per_shard=3, frames=4, size=32)
    write_synthetic_shards(str(out), "mid", num_shards=1, per_shard=2, frames=4, size=32)
    write_synthetic_shards(str(out), "small", num_shards=1, per_shard=1, frames=4, size=32, kind="image")
    resolved = {"manifest": {"name": "mix", "sources": [{"name": n, "weight": w} for n, w in WEIGHTS.items()]},
                "recipes": {}}
    write_dataset_info(str(out), resolved, "test", "0" * 16)
    return out


def _draw(cfg, batches: int):
    loader, progress = build_train_loader(cfg)
    it = iter(loader)
    keys = []
    for _ in range(batches):
        batch = next(it)
        progress.update(batch)
        keys.append(batch["keys"])
    return progress, keys


def test_choose_source_matches_weights_chi_square():
    names, cum = cumulative(WEIGHTS)
    counts = Counter(choose_source(names, cum, seed=0, slot=0, draw=d) for d in range(20000))
    assert chi_square(counts, WEIGHTS) < CHI2_CRIT_P001[2]
    # the test has power: the same draws are far from a uniform mixture
    assert chi_square(counts, {n: 1.0 for n in WEIGHTS}) > 100 * CHI2_CRIT_P001[2]


def test_loader_contributions_follow_manifest_weights(mixed_output, caplog):
    with caplog.at_level(logging.INFO, logger="vidrd_model.data.shard_loader"):
        progress, _ = _draw(_cfg(str(mixed_output / "shards")), batches=40)  # 160 samples
    counts = progress.contributed
    assert set(counts) == set(WEIGHTS) and sum(counts.values()) == 160
    assert chi_square(counts, WEIGHTS) < CHI2_CRIT_P001[2], counts
    # the one-sample source is drawn again and again (with replacement across its epochs)
    assert counts["small"] >= 20
    assert any("source mixing" in r.getMessage() and "dataset_info.json" in r.getMessage() for r in caplog.records)


def test_mix_flag_overrides_and_leaves_out(mixed_output):
    progress, _ = _draw(_cfg(str(mixed_output / "shards"), mix=parse_mix("big=0,mid=1,small=3")), batches=20)
    counts = progress.contributed
    assert "big" not in counts
    assert chi_square(counts, {"mid": 1, "small": 3}) < CHI2_CRIT_P001[1], counts


def test_mix_errors_name_the_problem(mixed_output):
    shards = str(mixed_output / "shards")
    with pytest.raises(MixError, match="nosuch.*big, mid, small"):
        build_train_loader(_cfg(shards, mix={"nosuch": 1.0, "big": 1, "mid": 1, "small": 1}))
    with pytest.raises(MixError, match="no weight to small"):
        build_train_loader(_cfg(shards, mix={"big": 1, "mid": 1}))
    with pytest.raises(MixError, match="name=weight"):
        parse_mix("big:0.5")
    with pytest.raises(MixError, match=">= 0"):
        parse_mix("big=-1")


def test_uncommitted_shard_is_skipped_with_a_note(mixed_output, tmp_path, caplog):
    committed = write_synthetic_shards(str(tmp_path), "done", num_shards=1, per_shard=1, frames=4, size=32)
    partial = write_synthetic_shards(str(tmp_path), "half", num_shards=1, per_shard=1, frames=4, size=32,
                                     commit=False)
    with caplog.at_level(logging.WARNING, logger="vidrd_model.data.shard_spec"):
        assert training_shards(str(tmp_path / "shards" / "*.tar")) == committed
    assert any(Path(partial[0]).name in r.getMessage() and "not committed" in r.getMessage() for r in caplog.records)
    with pytest.raises(FileNotFoundError, match="committed"):
        training_shards(partial)


@pytest.mark.parametrize("consumed", [3, 4])
def test_resume_is_exact_with_mixing_and_image_buckets(mixed_output, consumed):
    cfg = _cfg(str(mixed_output / "shards"), batch_size=2, image_as_frame_ratio_per_source={"small": 0.5})
    _, straight = _draw(cfg, 9)
    loader, progress = build_train_loader(cfg)
    it = iter(loader)
    first = []
    for _ in range(consumed):
        batch = next(it)
        progress.update(batch)
        first.append(batch["keys"])
    pending = [s["pending"] for s in progress.state_dict()["slots"].values()]
    resumed, _ = build_train_loader(cfg, resume=progress.state_dict())
    it = iter(resumed)
    rest = [next(it)["keys"] for _ in range(9 - consumed)]
    assert first + rest == straight, pending
