"""Source readers: turn a manifest source's `input` spec into the list of input items.

A reader is registered per (kind, format), declares a pydantic `Params` model for its `input` block (so a
bad manifest fails before any work, naming the field), and lists its inputs cheaply (paths, ids, captions;
no decoding) in a deterministic order. Each input becomes one `Item` whose key is stable across re-runs.
Problems with a single input (a missing file named in a table, an unreadable caption) are not errors here:
the item is emitted already `failed` with the reason, so it gets its status row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from vidrd_data.items import Item

READERS: dict[tuple[str, str], type["SourceReader"]] = {}


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


class SourceReader:
    kind: ClassVar[str]
    format: ClassVar[str]
    Params: ClassVar[type[ReaderParams]] = ReaderParams
    provides: ClassVar[tuple[str, ...]] = ("path",)  # item.data keys its items carry (vidrd_data.plan_check)

    def __init__(self, source_name: str, params: ReaderParams, base_dir: Path):
        self.source_name = source_name
        self.params = params
        self.base_dir = Path(base_dir)

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    def list_items(self) -> list[Item]:
        raise NotImplementedError

    def check(self) -> None:
        """Up-front check that the input exists at all (a missing root is a manifest error, not N rows)."""

    @staticmethod
    def item_meta(kind: str, source_id: str, **extra: Any) -> dict[str, Any]:
        return {"source": {"kind": kind, "source_id": source_id, **extra}}
