"""One source's decoded samples for one reader, endless and resumable.

A reader ("slot": one dataloader worker of one node) reads its share of a source's shards epoch after epoch,
the shard order reshuffled per epoch and the samples passed through a seeded shuffle buffer, so that the
sample at (epoch, index) is the same on every run. Resuming at (epoch, cursor) skips the samples before it
without decoding them; samples that were drawn before the checkpoint but not yet batched ("pending") are
decoded again on the way and handed back first, marked as recovered.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Callable, Iterator

import webdataset as wds

from .video_decode import SampleError

logger = logging.getLogger(__name__)


class SourceStream:
    def __init__(self, name: str, shards: list[str], sample_split: bool, slot: int, num_slots: int, seed: int,
                 shuffle_buffer: int, decode: Callable[[dict, int], dict], skipped: Counter,
                 position: tuple[int, int] = (0, 0), pending: tuple[tuple[int, int], ...] = ()):
        self.name, self.shards, self.sample_split = name, shards, sample_split
        self.slot, self.num_slots, self.seed, self.shuffle_buffer = slot, num_slots, seed, shuffle_buffer
        self.decode, self.skipped = decode, skipped
        self.position, self.pending = tuple(position), {tuple(p) for p in pending}

    def _raw(self, epoch: int) -> Iterator[dict]:
        order = list(self.shards)
        random.Random(f"{self.seed}:shards:{epoch}:{self.slot}:{self.name}").shuffle(order)

        def on_error(exc: Exception) -> bool:  # a broken tar member or shard: count it and go on
            self.skipped["shard_error"] += 1
            logger.warning("skipping unreadable shard data: %r", exc)
            return True

        raw = wds.tarfile_to_samples(handler=on_error)({"url": u} for u in order)
        if self.sample_split:
            raw = (s for i, s in enumerate(raw) if i % self.num_slots == self.slot)
        # Seeded shuffle buffer: the same seed and epoch give the same order, which exact resume relies on.
        rng = random.Random(f"{self.seed}:buffer:{epoch}:{self.slot}:{self.name}")
        buffer: list[dict] = []
        for sample in raw:
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self) -> Iterator[tuple[int, int, dict, bool]]:
        """(epoch, index, decoded sample, recovered) forever; recovered ones (pending at the checkpoint) first."""
        resume_at = self.position
        pending = set(self.pending)
        epoch = min([e for e, _ in pending] + [resume_at[0]])
        empty_epochs = 0
        while True:
            decoded = 0
            for index, raw in enumerate(self._raw(epoch)):
                at = (epoch, index)
                recovered = at in pending
                if not recovered and at < resume_at:
                    continue  # consumed before the checkpoint: skipped before decoding, so resuming is cheap
                pending.discard(at)
                try:
                    item = self.decode(raw, epoch)
                except SampleError as exc:
                    if not recovered:
                        self.skipped[exc.reason] += 1
                    logger.debug("skipping sample %s: %s", raw.get("__key__"), exc)
                    continue
                decoded += 1
                yield epoch, index, item, recovered
            empty_epochs = 0 if decoded else empty_epochs + 1
            if empty_epochs >= 2:  # one may be a resume at an epoch's very end
                raise RuntimeError(
                    f"source {self.name!r}: reader {self.slot} of {self.num_slots} found no decodable sample in two "
                    f"epochs of its {len(self.shards)} shard(s) (skipped so far: {dict(self.skipped)}). Use fewer "
                    "dataloader workers/nodes, more shards of this source, or leave it out of the mix.")
            epoch += 1
