"""Committed samples as export rows: where each lives (shard, tar, byte offset) and its KEY.json, flattened."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass, field
from typing import Iterator

from vidrd_data.sample_json import SCORE_KEYS


@dataclass
class Sample:
    key: str
    shard: str
    tar: str  # the tar's path as the shard listing gives it
    offset: int  # byte offset of the sample's first member header in the tar
    meta: dict
    caption: str
    members: dict[str, bytes] = field(default_factory=dict)  # only the members asked for

    def row(self) -> dict:
        m, v, src = self.meta, self.meta.get("video") or {}, self.meta.get("source") or {}
        span = src.get("span") or [None, None]
        row = {"key": self.key, "shard": self.shard, "tar": self.tar, "offset": self.offset,
               "caption": self.caption, "caption_source": m.get("caption_source"),
               "source": src.get("dataset"), "kind": src.get("kind"), "source_id": src.get("source_id"),
               "span_start": span[0], "span_end": span[1], "duration": v.get("duration"),
               "num_frames": v.get("frames"), "fps": v.get("fps"), "width": v.get("width"), "height": v.get("height"),
               "pseudo_motion": (m.get("pseudo_video") or {}).get("kind"), "label": m.get("label")}
        row.update({f"score_{k}": (m.get("scores") or {}).get(k) for k in SCORE_KEYS})
        return row


def iter_samples(output: str, members: tuple[str, ...] = ()) -> Iterator[Sample]:
    """Every committed sample once (shard order), with the requested member bytes (json and txt always)."""
    from vidrd_format.shards import committed_shards

    seen: set[str] = set()
    for sh in committed_shards(output):
        with sh.fs.open(sh.files.tar, "rb") as f, tarfile.open(fileobj=f) as tar:
            cur: Sample | None = None
            for m in tar:
                key, _, ext = m.name.partition(".")
                if cur is None or cur.key != key:
                    if cur is not None and cur.key not in seen:
                        seen.add(cur.key)
                        yield cur
                    cur = Sample(key, sh.stem, sh.files.tar, m.offset, {}, "")
                if ext == "json":
                    cur.meta = json.loads(tar.extractfile(m).read())
                elif ext == "txt":
                    cur.caption = tar.extractfile(m).read().decode("utf-8")
                if ext in members:
                    cur.members[ext] = tar.extractfile(m).read()
            if cur is not None and cur.key not in seen:
                seen.add(cur.key)
                yield cur
