"""Stream training batches from `vidrd-data build` shards with webdataset.

Each reader ("slot" = one dataloader worker of one node) gets a disjoint share of the shards, reads them
forever (epoch after epoch, shard order reshuffled per epoch), shuffles samples with a seeded buffer, decodes
them and yields whole batches. Every batch carries the reader's position so that a run resumes exactly
where it stopped (see `LoaderProgress`). A sample that fails to decode is skipped and counted, never raised.
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
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .shard_spec import expand_shard_spec
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


class ShardClipDataset(IterableDataset):
    """An endless stream of batches (dicts) for one node; see the module docstring."""

    def __init__(self, config: LoaderConfig, tokenizer=None, rank: int = 0, world_size: int = 1,
                 resume: dict | None = None):
        self.config = config
        self.urls = expand_shard_spec(config.shards)
        self.tokenizer = tokenizer
        self.rank, self.world_size = rank, world_size
        self.resume = resume or {}

    # -- one reader ---------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        num_workers, local = (info.num_workers, info.id) if info else (1, 0)
        # Rotate worker roles on resume so that the batch order continues the uninterrupted one: DataLoader
        # always asks worker 0 first, but the next batch is due from the worker after the last one consumed.
        logical = (local + self.resume.get("batches", 0)) % num_workers
        slot = self.rank * num_workers + logical
        num_slots = self.world_size * num_workers
        state = dict(self.resume.get("slots", {}).get(str(slot)) or {"epoch": 0, "cursor": 0, "pending": [], "skipped": {}})
        state["skipped"] = Counter(state["skipped"])
        shards, sample_split = _split(self.urls, slot, num_slots)
        empty_epochs = 0
        while True:
            produced = 0
            for batch in self._epoch(state, slot, num_slots, shards, sample_split):
                produced += 1
                yield batch
            empty_epochs = 0 if produced else empty_epochs + 1
            if empty_epochs >= 2:  # one may be a resume at an epoch's very end
                raise RuntimeError(
                    f"reader {slot} of {num_slots} produced no batch in a whole epoch: it sees fewer than "
                    f"batch_size={self.config.batch_size} decodable samples (skipped: {dict(state['skipped'])}). "
                    "Use fewer dataloader workers/nodes, a smaller batch, or more shards."
                )
            state.update(epoch=state["epoch"] + 1, cursor=0, pending=[])

    def _samples(self, state, slot, num_slots, shards, sample_split) -> Iterator[dict]:
        cfg = self.config
        order = list(shards)
        random.Random(f"{cfg.seed}:shards:{state['epoch']}:{slot}").shuffle(order)

        def on_error(exc: Exception) -> bool:  # a broken tar member or shard: count it and go on
            state["skipped"]["shard_error"] += 1
            logger.warning("skipping unreadable shard data: %r", exc)
            return True

        raw = wds.tarfile_to_samples(handler=on_error)({"url": u} for u in order)
        if sample_split:
            raw = (s for i, s in enumerate(raw) if i % num_slots == slot)
        # Seeded shuffle buffer: the same seed and epoch give the same order, which exact resume relies on.
        rng = random.Random(f"{cfg.seed}:buffer:{state['epoch']}:{slot}")
        buffer: list[dict] = []
        for sample in raw:
            buffer.append(sample)
            if len(buffer) >= cfg.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer

    def _epoch(self, state, slot, num_slots, shards, sample_split) -> Iterator[dict]:
        cfg = self.config
        resume_cursor, resume_pending = state["cursor"], set(state["pending"])
        buckets: dict[int, list[tuple[int, dict]]] = {}
        for index, raw in enumerate(self._samples(state, slot, num_slots, shards, sample_split)):
            if index < resume_cursor and index not in resume_pending:
                continue  # consumed before the checkpoint: skipped before decoding, so resuming is cheap
            try:
                item = self._decode(raw, state["epoch"])
            except SampleError as exc:
                if index >= resume_cursor:
                    state["skipped"][exc.reason] += 1
                logger.debug("skipping sample %s: %s", raw.get("__key__"), exc)
                continue
            bucket = buckets.setdefault(item["pixel_values"].shape[1], [])
            bucket.append((index, item))
            state["cursor"] = max(state["cursor"], index + 1)
            if len(bucket) == cfg.batch_size:
                items = [it for _, it in bucket]
                bucket.clear()
                state["pending"] = sorted(i for b in buckets.values() for i, _ in b)
                yield self._collate(items, slot, state)
        # Partial buckets are dropped at the end of an epoch (drop_last), so no state crosses epochs.

    def _decode(self, raw: dict, epoch: int) -> dict:
        cfg = self.config
        key = raw.get("__key__", "")
        rng = random.Random(f"{cfg.seed}:{epoch}:{key}")  # per sample: independent of read order
        try:
            meta = json.loads(raw["json"]) if "json" in raw else {}
            caption = raw["txt"].decode("utf-8").strip() if "txt" in raw else ""
        except (ValueError, UnicodeDecodeError) as exc:
            raise SampleError("bad_metadata", repr(exc)) from exc
        source = meta.get("source") or {}
        is_image = source.get("kind") == "image"
        if is_image and "jpg" in raw and rng.random() < cfg.image_as_frame_ratio:
            pixels = decode_image_frame(raw["jpg"], cfg.clip, rng)
        elif "mp4" in raw:
            frames = (meta.get("video") or {}).get("frames")
            pixels = decode_video_clip(raw["mp4"], cfg.clip, rng, total_frames=frames)
        else:
            raise SampleError("missing_member", f"{key} has no mp4 ({sorted(k for k in raw if not k.startswith('__'))})")
        return {"pixel_values": pixels, "caption": caption, "key": key, "url": raw.get("__url__", "")}

    def _collate(self, items: list[dict], slot: int, state: dict) -> dict:
        captions = [it["caption"] for it in items]
        batch = {
            "pixel_values": torch.stack([it["pixel_values"] for it in items]),  # uint8 (B, 3, F, H, W)
            "captions": captions,
            "keys": [it["key"] for it in items],
            "urls": sorted({it["url"] for it in items}),
            "loader_state": {"slot": slot, "epoch": state["epoch"], "cursor": state["cursor"],
                             "pending": list(state["pending"]), "skipped": dict(state["skipped"])},
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
        self.urls_seen: set[str] = set()

    def update(self, batch: dict) -> None:
        state = batch["loader_state"]
        self.slots[str(state["slot"])] = {k: v for k, v in state.items() if k != "slot"}
        self.batches += 1
        self.urls_seen.update(batch["urls"])

    @property
    def skipped(self) -> dict[str, int]:
        total: Counter = Counter()
        for state in self.slots.values():
            total.update(state.get("skipped", {}))
        return dict(total)

    def state_dict(self) -> dict:
        return {"batches": self.batches, "slots": json.loads(json.dumps(self.slots))}


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
