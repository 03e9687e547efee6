"""The unit of work that flows through the stages, and the rules for its key.

An `Item` starts life in a source reader (one per input: an image, a video) and is passed from stage to
stage. A stage may fan it out into several items (one video -> many clips); each child inherits a share of
the parent's `weight`, so the sink knows an input is fully accounted for when the weights of its terminal
items sum to exactly 1 (exact fractions: no float drift, any depth of fan-out).

Status is terminal once it is not "ok": later stages pass such items through untouched and the sink writes
their status row (filtered with the rule, failed with the error). Nothing disappears silently.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

OK, SUCCESS, FILTERED, FAILED = "ok", "success", "filtered", "failed"
_KEY_BAD = re.compile(r"[^0-9a-z_]+")


def slug(text: str, max_len: int = 48) -> str:
    """A dot-free `[0-9a-z_]` rendering of `text`; long or lossy slugs get a short hash so keys stay unique."""
    raw = str(text)
    s = _KEY_BAD.sub("_", raw.lower()).strip("_")
    if not s or len(s) > max_len or s != raw:
        digest = hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        s = (s[: max_len - 9].rstrip("_") + "_" + digest).strip("_")
    return s


def make_key(source: str, input_id: str, span: tuple[float, float] | None = None) -> str:
    """Stable sample key: source name + the item's id in its source (+ clip span in milliseconds)."""
    key = f"{slug(source, 24)}_{slug(input_id)}"
    if span is not None:
        key += f"_{int(round(span[0] * 1000)):08d}_{int(round(span[1] * 1000)):08d}"
    return key


@dataclass
class Item:
    key: str
    source: str
    input_id: str
    weight: Fraction = Fraction(1)
    status: str = OK
    reason: str | None = None
    stage: str | None = None  # the stage that set a terminal status
    data: dict[str, Any] = field(default_factory=dict)  # working payload: paths, frames, bytes, caption
    meta: dict[str, Any] = field(default_factory=dict)  # becomes KEY.json (merged with the fixed schema)

    @property
    def alive(self) -> bool:
        return self.status == OK

    def fail(self, stage: str, reason: str) -> "Item":
        self.status, self.stage, self.reason = FAILED, stage, reason
        self.data = {}  # drop payload: a failed row carries no bytes
        return self

    def filter(self, stage: str, rule: str) -> "Item":
        self.status, self.stage, self.reason = FILTERED, stage, rule
        self.data = {}
        return self

    def fan_out(self, n: int) -> list["Item"]:
        """Split into `n` children sharing this item's weight; the caller sets their keys and data."""
        if n <= 0:
            raise ValueError("fan_out needs n >= 1; filter the item instead")
        share = self.weight / n
        return [
            Item(key=self.key, source=self.source, input_id=self.input_id, weight=share,
                 data=dict(self.data), meta=_copy_meta(self.meta))
            for _ in range(n)
        ]


def _copy_meta(meta: dict) -> dict:
    return pickle.loads(pickle.dumps(meta, protocol=5))


# Ray Data rows have a fixed, flat schema; the item itself travels pickled (numpy arrays included).
ROW_COLUMNS = ("key", "source", "input_id", "status", "item")


def to_row(item: Item) -> dict[str, Any]:
    return {"key": item.key, "source": item.source, "input_id": item.input_id, "status": item.status,
            "item": pickle.dumps(item, protocol=5)}


def from_row(row: dict[str, Any]) -> Item:
    return pickle.loads(row["item"])
