"""Source readers: a manifest source's `input` spec -> input PARTITIONS (on the driver) -> items (in the workers).

A reader is registered per (kind, format) and declares a pydantic `Params` model for its `input` block (a bad
manifest fails before any work, naming the field). It works in three steps:

- `plan()` on the driver, before Ray starts: checks the input exists and scans what must be scanned to find
  errors early (a CSV's encoding and columns, a list file); cheap, never per-item objects.
- `partitions(n)` on the driver, lazily: `Partition`s (a tar URL, a row range of a table, a chunk of a listing),
  deterministic for the same inputs; each becomes one output shard.
- `expand(partition)` inside a Ray task: the partition's `Item`s, keys stable across re-runs. A problem with one
  input (a missing caption, a path leaving the input root) is not an error here: its item is emitted already
  `failed` with the reason, so it gets its status row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

from pydantic import BaseModel, ConfigDict

from vidrd_data.items import Item

READERS: dict[tuple[str, str], type["SourceReader"]] = {}
DEFAULT_PARTITION_INPUTS = 1000


def register_reader(kind: str, fmt: str):
    def deco(cls):
        cls.kind, cls.format = kind, fmt
        READERS[(kind, fmt)] = cls
        return cls
    return deco


def get_reader(kind: str, fmt: str) -> type["SourceReader"]:
    import vidrd_data.sources  # noqa: F401  (registers the built-in readers)
    if (kind, fmt) not in READERS:
        known = sorted(f for k, f in READERS if k == kind)
        raise KeyError(f"unknown input format {fmt!r} for kind {kind!r}; allowed: {', '.join(known) or 'none'}")
    return READERS[(kind, fmt)]


class ReaderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    # Paths (symlinks, table cells, list lines) that lead outside the input's root are refused with a row
    # (`outside_root`) unless this is set: a manifest should not be able to read arbitrary files by accident.
    allow_outside_root: bool = False


@dataclass(frozen=True)
class Partition:
    """A unit of work and of output: one shard. `payload` is reader-specific and small (paths, a row range)."""
    source: str
    index: int
    payload: Any
    size: int | None = None  # number of inputs when known without reading them (listings, tables)
    where: str = ""  # for messages: "a.tar", "table.csv rows 1000-1999"


class SourceReader:
    kind: ClassVar[str]
    format: ClassVar[str]
    Params: ClassVar[type[ReaderParams]] = ReaderParams
    provides: ClassVar[tuple[str, ...]] = ("path",)  # item.data keys its items carry (vidrd_data.plan_check)

    def __init__(self, source_name: str, params: ReaderParams, base_dir: Path,
                 inputs_per_partition: int = DEFAULT_PARTITION_INPUTS):
        self.source_name = source_name
        self.params = params
        self.base_dir = Path(base_dir)
        self.inputs_per_partition = max(1, int(inputs_per_partition))

    # What the driver's planning keeps (a source's tar URLs, a table's partition offsets) stays on the driver:
    # a partition's task gets the reader without it (its partition payload says what it needs).
    _DRIVER_ONLY = ("_tars", "_scan")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._DRIVER_ONLY}

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    # -- driver ---------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Up-front check that the input exists at all (a missing root is a manifest error, not N rows)."""

    def plan(self) -> None:
        """Before Ray starts: `check()`, plus any scan that finds input errors early (overridden by tables)."""
        self.check()

    def entries(self) -> Iterator[Any]:
        """Listing readers: small, picklable entries (a relative path, a (line, text) pair) in a fixed order."""
        raise NotImplementedError

    def partitions(self) -> Iterator[Partition]:
        """Default: consecutive chunks of `entries()` (lazily: the listing is never held whole)."""
        inputs_per_partition = self.inputs_per_partition
        it = iter(self.entries())
        index = 0
        while chunk := list(islice(it, inputs_per_partition)):
            yield Partition(self.source_name, index, chunk, len(chunk), f"entries {index * inputs_per_partition}+")
            index += 1

    # -- worker ---------------------------------------------------------------------------------------------
    def make_item(self, entry: Any) -> Item:
        raise NotImplementedError

    def expand(self, partition: Partition) -> Iterator[Item]:
        for entry in partition.payload:
            yield self.make_item(entry)

    def list_items(self) -> list[Item]:
        """Every item of every partition, in order (small inputs, tests, benchmarks)."""
        self.plan()
        return [it for p in self.partitions() for it in self.expand(p)]

    # -- helpers --------------------------------------------------------------------------------------------
    @staticmethod
    def item_meta(kind: str, source_id: str, **extra: Any) -> dict[str, Any]:
        return {"source": {"kind": kind, "source_id": source_id, **extra}}

    def outside_root(self, path: Path, root: Path) -> str | None:
        """`outside_root: ...` when `path` (symlinks resolved) is not under `root`, unless the source allows it."""
        if self.params.allow_outside_root:
            return None
        real, real_root = os.path.realpath(path), os.path.realpath(root)
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            return None
        return (f"outside_root: {path} resolves to {real}, outside the input root {real_root} "
                f"(set allow_outside_root: true on this source's input to allow it)")


def walk_files(root: Path, exts: Iterable[str], recursive: bool = True) -> Iterator[Path]:
    """Files under `root` with one of `exts` (lower-case, with dot), in a fixed order, one folder in memory at a
    time. Symlinked folders are followed once each (a cycle is not looped); symlinks are yielded as they are, so
    that the caller can refuse those leading outside the root with a row."""
    exts = tuple(exts)
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        if not recursive:
            dirnames[:] = []
        for name in sorted(filenames):
            if name.lower().endswith(exts):
                yield Path(dirpath) / name
