"""Reading a WebDataset tar as a stream of samples, telling intact samples from repeated and damaged ones.

Members of a sample are contiguous and share a prefix (the name up to the first dot of its file name, as
webdataset splits it). A prefix that comes back after another sample, or a member extension repeated inside
one sample, starts a *repeat*: the first sample keeps its members, the repeat is reported (never merged into
it). A tar that ends early (a read error, or no end-of-archive blocks) yields the intact samples before the
damage, then one `Damage` naming the sample in progress (if any) and where the rest became unreadable.
A member larger than `max_member_bytes` (its header's size) is never read into memory: it is an `Oversize`
in the sample, so the reader can give that sample a `too_large` row.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from typing import Iterator

from vidrd_data.sources.inputs import open_input


@dataclass(frozen=True)
class Oversize:
    size: int  # bytes, as the member's header gives it


@dataclass
class TarSample:
    base: str
    members: dict[str, "bytes | Oversize"] = field(default_factory=dict)
    occurrence: int = 1  # 2, 3...: the same prefix seen again in this tar


@dataclass
class Damage:
    partial: TarSample | None  # the sample being read when the data ended
    offset: int  # bytes of the tar read intact
    error: str


def split_name(name: str) -> tuple[str, str]:
    """webdataset's rule: `dir/abc.seg.jpg` -> (`dir/abc`, `seg.jpg`)."""
    head, _, tail = name.rpartition("/")
    stem, _, ext = tail.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower()


def tar_samples(url: str, max_member_bytes: int | None = None) -> Iterator[TarSample | Damage]:
    seen: dict[str, int] = {}
    current: TarSample | None = None
    with open_input(url) as f:
        try:
            tf = tarfile.open(fileobj=f, mode="r|*")
            for m in tf:
                if not m.isfile():
                    continue
                base, ext = split_name(m.name)
                # over the cap: skipped, never buffered (the stream seeks or reads past it in blocks)
                data = Oversize(m.size) if max_member_bytes is not None and m.size > max_member_bytes \
                    else tf.extractfile(m).read()
                if current is None or base != current.base or ext in current.members:
                    if current is not None:
                        yield current
                    seen[base] = seen.get(base, 0) + 1
                    current = TarSample(base, occurrence=seen[base])
                current.members[ext] = data
            # No end-of-archive blocks after the last member: the file was cut at a member boundary.
            ended = getattr(tf.fileobj, "pos", tf.offset + 512) - tf.offset >= 512 or tf.offset == 0
            if not ended:
                yield Damage(current, tf.offset, "no end-of-archive marker (the file ends mid-archive)")
                return
        except (tarfile.TarError, OSError, EOFError) as exc:
            offset = getattr(locals().get("tf"), "offset", 0)
            yield Damage(current, offset, f"{type(exc).__name__}: {exc}")
            return
    if current is not None:
        yield current
