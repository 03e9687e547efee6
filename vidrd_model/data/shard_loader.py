"""Stream training batches from `vidrd-data build` shards with webdataset, sources mixed by weight.

Only committed shards are read (`shard_spec.training_shards`). Shards are grouped by source; each reader
("slot" = one dataloader worker of one node) takes a disjoint share of every source's shards and, draw after
draw, picks a source by weight (`source_mix`) and takes that source's next decoded sample (`source_stream`).
Samples are bucketed by frame count (one-frame image clips apart from videos) into whole batches. Every batch
carries the reader's position so that a run resumes exactly where it stopped (see `LoaderProgress`). A sample
that fails to decode is skipped and counted, never raised.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from . import source_mix
from .shard_spec import training_shards
from .source_stream import SourceStream
from .video_decode import ClipSpec, SampleError, decode_image_frame, decode_video_clip

logger = logging.getLogger(__name__)


@dataclass
class LoaderConfig:
    shards: Any = None                   # str or list: globs, brace patterns, directories, URLs
    clip: ClipSpec = field(default_factory=ClipSpec)
    batch_size: int = 1
    num_workers: int = 2                 # dataloader worker processes per node
    shuffle_buffer: int = 256
    image_as_frame_ratio: float = 0.0    # share of image samples trained as a one-frame clip (their jpg)
    image_as_frame_ratio_per_source: dict[str, float] = field(default_factory=dict)  # overrides, by source
    mix: Any = None                      # {source: weight} or "a=0.4,b=0.6"; None: the manifest's weights, if any
    max_caption_length: int | None = None  # None: the tokenizer's model_max_length
    seed: int = 0
    worker_start_method: str | None = None  # "fork", "spawn", "forkserver"; None: the platform's default
    worker_niceness: int = 10               # decoding workers yield the CPU to the training threads first


def _split(urls: list[str], slot: int, num_slots: int) -> tuple[list[str], bool]:
    """Shards for one reader. With fewer shards than readers, every reader reads all and keeps 1/num_slots of
    the samples (disjoint still, but each reader pays for reading everything)."""
    if len(urls) >= num_slots:
        return urls[slot::num_slots], False
    return list(urls), True


def resolve_mix(config: LoaderConfig, urls: list[str]) -> tuple[dict[str, list[str]], dict[str, float] | None]:
    """Shard groups and their normalised weights (None: one stream of all shards, drawn alike)."""
    groups = source_mix.group_by_source(urls)
    recorded, read = source_mix.dataset_info_weights(urls)
    weights = source_mix.resolve_weights(groups, source_mix.parse_mix(config.mix), recorded)
    if weights is None:
        return {source_mix.ALL: list(urls)}, None
    where = "--mix / data.mix" if config.mix else ", ".join(read)
    logger.info("source mixing (weights from %s): %s", where, ", ".join(
        f"{n} {w:.3f} ({len(groups[n])} shards)" for n, w in sorted(weights.items())))
    left_out = sorted(set(groups) - set(weights))
    if left_out:
        logger.info("left out of the mix (weight 0): %s", ", ".join(left_out))
    return {n: groups[n] for n in weights}, weights


class ShardClipDataset(IterableDataset):
    """An endless stream of batches (dicts) for one node; see the module docstring."""

    def __init__(self, config: LoaderConfig, tokenizer=None, rank: int = 0, world_size: int = 1,
                 resume: dict | None = None):
        self.config = config
        self.urls = training_shards(config.shards)
        self.groups, self.weights = resolve_mix(config, self.urls)
        self.tokenizer = tokenizer
        self.rank, self.world_size = rank, world_size
        self.resume = resume or {}

    def __iter__(self) -> Iterator[dict]:
        cfg = self.config
        info = get_worker_info()
        num_workers, local = (info.num_workers, info.id) if info else (1, 0)
        # Rotate worker roles on resume so that the batch order continues the uninterrupted one: DataLoader
        # always asks worker 0 first, but the next batch is due from the worker after the last one consumed.
        logical = (local + self.resume.get("batches", 0)) % num_workers
        slot = self.rank * num_workers + logical
        num_slots = self.world_size * num_workers
        saved = self.resume.get("slots", {}).get(str(slot)) or {}
        state = {"draws": saved.get("draws", 0), "groups": dict(saved.get("groups") or {}),
                 "pending": [list(p) for p in saved.get("pending", [])], "skipped": Counter(saved.get("skipped", {}))}
        streams = {}
        for name, urls in self.groups.items():
            shards, sample_split = _split(urls, slot, num_slots)
            pos = state["groups"].get(name) or {"epoch": 0, "cursor": 0}
            streams[name] = iter(SourceStream(
                name, shards, sample_split, slot, num_slots, cfg.seed, cfg.shuffle_buffer, self._decode,
                state["skipped"], (pos["epoch"], pos["cursor"]),
                tuple((e, i) for _, g, e, i in state["pending"] if g == name)))
        buckets = self._recover_pending(state, streams)
        names, cum = source_mix.cumulative(self.weights) if self.weights else ([source_mix.ALL], [1.0])
        draw = state["draws"]
        while True:
            name = names[0] if len(names) == 1 else source_mix.choose_source(names, cum, cfg.seed, slot, draw)
            epoch, index, item, _ = next(streams[name])
            state["groups"][name] = {"epoch": epoch, "cursor": index + 1}
            bucket = buckets.setdefault(item["pixel_values"].shape[1], [])
            bucket.append((draw, name, epoch, index, item))
            draw += 1
            if len(bucket) == cfg.batch_size:
                items = [entry[-1] for entry in bucket]
                bucket.clear()
                state["draws"] = draw
                state["pending"] = sorted([d, g, e, i] for b in buckets.values() for d, g, e, i, _ in b)
                yield self._collate(items, slot, state)

    @staticmethod
    def _recover_pending(state: dict, streams: dict) -> dict[int, list]:
        """Buckets as they were at the checkpoint: the pending samples, decoded again, in their draw order."""
        found = {}
        for name, stream in streams.items():
            need = {(e, i) for _, g, e, i in state["pending"] if g == name}
            while need:
                epoch, index, item, recovered = next(stream)
                if not recovered:
                    raise RuntimeError(f"resume: source {name!r} no longer holds the samples pending at the "
                                       "checkpoint (were its shards changed?); resume with the same shards")
                found[(name, epoch, index)] = item
                need.discard((epoch, index))
        buckets: dict[int, list] = {}
        for d, g, e, i in sorted(state["pending"]):
            item = found[(g, e, i)]
            buckets.setdefault(item["pixel_values"].shape[1], []).append((d, g, e, i, item))
        return buckets

    def _decode(self, raw: dict, epoch: int) -> dict:
        cfg = self.config
        key = raw.get("__key__", "")
        url = raw.get("__url__", "")
        source = source_mix.source_of_url(url) or "(unnamed)"
        rng = random.Random(f"{cfg.seed}:{epoch}:{key}")  # per sample: independent of read order
        try:
            meta = json.loads(raw["json"]) if "json" in raw else {}
            caption = raw["txt"].decode("utf-8").strip() if "txt" in raw else ""
        except (ValueError, UnicodeDecodeError) as exc:
            raise SampleError("bad_metadata", repr(exc)) from exc
        is_image = (meta.get("source") or {}).get("kind") == "image"
        ratio = cfg.image_as_frame_ratio_per_source.get(source, cfg.image_as_frame_ratio)
        if is_image and "jpg" in raw and rng.random() < ratio:
            pixels = decode_image_frame(raw["jpg"], cfg.clip, rng)
        elif "mp4" in raw:
            frames = (meta.get("video") or {}).get("frames")
            pixels = decode_video_clip(raw["mp4"], cfg.clip, rng, total_frames=frames)
        else:
            raise SampleError("missing_member", f"{key} has no mp4 ({sorted(k for k in raw if not k.startswith('__'))})")
        return {"pixel_values": pixels, "caption": caption, "key": key, "url": url, "source": source}

    def _collate(self, items: list[dict], slot: int, state: dict) -> dict:
        captions = [it["caption"] for it in items]
        batch = {
            "pixel_values": torch.stack([it["pixel_values"] for it in items]),  # uint8 (B, 3, F, H, W)
            "captions": captions,
            "keys": [it["key"] for it in items],
            "sources": [it["source"] for it in items],
            "urls": sorted({it["url"] for it in items}),
            "loader_state": {"slot": slot, "draws": state["draws"], "groups": json.loads(json.dumps(state["groups"])),
                             "pending": [list(p) for p in state["pending"]], "skipped": dict(state["skipped"])},
        }
        if self.tokenizer is not None:
            max_length = self.config.max_caption_length or self.tokenizer.model_max_length
            batch["input_ids"] = self.tokenizer(captions, padding="max_length", max_length=max_length,
                                                truncation=True, return_tensors="pt").input_ids
        return batch


class LoaderProgress:
    """What the training loop consumed: the resume point (per reader) and the skip counters."""

    def __init__(self, resume: dict | None = None):
        resume = resume or {}
        self.batches = int(resume.get("batches", 0))
        self.slots: dict[str, dict] = dict(resume.get("slots", {}))
        self.contributed: Counter = Counter(resume.get("contributed", {}))  # samples used, by source
        self.urls_seen: set[str] = set()

    def update(self, batch: dict) -> None:
        state = batch["loader_state"]
        self.slots[str(state["slot"])] = {k: v for k, v in state.items() if k != "slot"}
        self.batches += 1
        self.contributed.update(batch.get("sources", []))
        self.urls_seen.update(batch["urls"])

    @property
    def skipped(self) -> dict[str, int]:
        total: Counter = Counter()
        for state in self.slots.values():
            total.update(state.get("skipped", {}))
        return dict(total)

    def state_dict(self) -> dict:
        return {"batches": self.batches, "slots": json.loads(json.dumps(self.slots)),
                "contributed": dict(self.contributed)}


def _lower_priority(niceness: int, _worker_id: int) -> None:
    # Where cores are scarce, a decoding worker that preempts one of torch's OpenMP threads stalls the whole
    # parallel op; at a lower priority it runs in the gaps instead (no effect when cores are free).
    try:
        os.nice(niceness)
    except OSError:
        pass


def build_train_loader(config: LoaderConfig, tokenizer=None, rank: int = 0, world_size: int = 1,
                       resume: dict | None = None, pin_memory: bool = False) -> tuple[DataLoader, LoaderProgress]:
    """A DataLoader of batches for this node, and the tracker to call `.update(batch)` on for each one used.

    Resume is exact when shards, world size, num_workers, batch size and clip settings are unchanged.
    """
    dataset = ShardClipDataset(config, tokenizer, rank, world_size, resume)
    kwargs = {"prefetch_factor": 4, "persistent_workers": False} if config.num_workers > 0 else {}
    if config.num_workers > 0 and config.worker_start_method:
        kwargs["multiprocessing_context"] = config.worker_start_method
    if config.num_workers > 0 and config.worker_niceness > 0:
        kwargs["worker_init_fn"] = functools.partial(_lower_priority, config.worker_niceness)
    # Its own generator: creating the iterator would otherwise draw from the global torch RNG (dropout's),
    # and a resumed run, which creates it at another moment, would see shifted dropout masks.
    loader = DataLoader(dataset, batch_size=None, num_workers=config.num_workers, pin_memory=pin_memory,
                        generator=torch.Generator().manual_seed(config.seed), **kwargs)
    return loader, LoaderProgress(resume)


def loader_config_from_dict(data: dict) -> LoaderConfig:
    data = dict(data)
    clip = ClipSpec(**data.pop("clip", {}))
    return LoaderConfig(clip=clip, **data)


def loader_config_to_dict(config: LoaderConfig) -> dict:
    return asdict(config)
