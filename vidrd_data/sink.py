"""The shard sink: the only writer of the output. Commit protocol from DESIGN.md.

  shards/{source}-{NNNNNN}.tar          samples (KEY.mp4, KEY.jpg, KEY.txt, KEY.json), keys sorted, members contiguous
  shards/{source}-{NNNNNN}.parquet      one row per attempted item (success / filtered / failed + reason)
  shards/{source}-{NNNNNN}_stats.json   written LAST: the shard's commit marker
  dataset_info.json                     schema, resolved manifest + recipes, version, totals

Inputs are assigned to shards before any work (deterministic groups), so a shard is written as soon as
every input in it is accounted for: an input is complete when the weights of its terminal items (each key
counted once, whatever Ray retried) sum to exactly 1. A re-run reads the committed shards, skips their
inputs, deletes leftovers of uncommitted shards and rebuilds them; a success whose key is already
committed (e.g. a retried input) is never written twice.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable

import fsspec
import pandas as pd

from vidrd_data.items import FAILED, FILTERED, OK, SUCCESS, Item, make_key
from vidrd_data.sample_json import SCHEMA_VERSION, sample_json

_SHARD_RE = re.compile(r"^(?P<source>[a-z0-9_]+)-(?P<index>\d{6})_stats\.json$")
STATUS_COLUMNS = ["key", "source", "input_id", "status", "stage", "reason", "shard", "metadata"]


def _fs(output: str):
    fs, root = fsspec.core.url_to_fs(output)
    return fs, root.rstrip("/")


@dataclass
class CommittedState:
    """What earlier runs committed: per source, done inputs; all success keys; the effective status rows."""
    inputs: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    success_keys: set[str] = field(default_factory=set)
    next_index: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rows: pd.DataFrame | None = None
    removed: list[str] = field(default_factory=list)

    def failed_inputs(self, source: str) -> set[str]:
        """Inputs whose effective (latest) outcome includes a failed row."""
        if self.rows is None or self.rows.empty:
            return set()
        r = self.rows[(self.rows["source"] == source)]
        return set(r.loc[r["status"] == FAILED, "input_id"])


def read_status(output: str) -> pd.DataFrame:
    """Every committed status row, the latest shard winning per key (retries supersede old rows)."""
    fs, root = _fs(output)
    frames = []
    for stats in sorted(fs.glob(f"{root}/shards/*_stats.json")):
        pq = stats[: -len("_stats.json")] + ".parquet"
        with fs.open(pq, "rb") as f:
            df = pd.read_parquet(f)
        df["commit_time"] = json.loads(fs.cat_file(stats)).get("committed_at", 0)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=STATUS_COLUMNS)
    df = pd.concat(frames, ignore_index=True).sort_values(["commit_time", "shard"], kind="stable")
    # An input that was retried: its newer rows replace all of its older rows.
    latest_shard = df.groupby(["source", "input_id"])["shard"].transform("last")
    return df[df["shard"] == latest_shard].drop(columns="commit_time").reset_index(drop=True)


def scan_committed(output: str, clean: bool = True) -> CommittedState:
    fs, root = _fs(output)
    state = CommittedState()
    shard_dir = f"{root}/shards"
    if not fs.exists(shard_dir):
        return state
    committed_bases = set()
    for stats in fs.glob(f"{shard_dir}/*_stats.json"):
        m = _SHARD_RE.match(stats.rsplit("/", 1)[-1])
        if m:
            committed_bases.add(stats[: -len("_stats.json")])
            state.next_index[m["source"]] = max(state.next_index[m["source"]], int(m["index"]) + 1)
    # Anything not part of a committed shard is a leftover of a killed run: remove it (it is rebuilt).
    for path in fs.ls(shard_dir, detail=False):
        base = re.sub(r"(\.tar(\.tmp)?|\.parquet(\.tmp)?|_stats\.json(\.tmp)?)$", "", path)
        if base not in committed_bases:
            state.removed.append(path)
            if clean:
                fs.rm(path)
    rows = read_status(output)
    state.rows = rows
    for src, iid in zip(rows["source"], rows["input_id"]):
        state.inputs[src].add(iid)
    # All success keys ever committed (also in superseded shards: their tars still hold the samples).
    for stats in fs.glob(f"{shard_dir}/*_stats.json"):
        state.success_keys.update(json.loads(fs.cat_file(stats)).get("success_keys", []))
    return state


def _reason_class(reason: str | None) -> str:
    """Group reasons for the report: drop the item-specific tail (paths, sizes) after the first colon."""
    if not reason:
        return "?"
    head = ": ".join(reason.split(": ")[:2])
    return head if len(head) <= 80 else head[:77] + "..."


@dataclass
class ShardPlan:
    source: str
    index: int
    input_ids: list[str]

    @property
    def name(self) -> str:
        return f"{self.source}-{self.index:06d}"


def plan_shards(source: str, input_ids: list[str], inputs_per_shard: int, first_index: int) -> list[ShardPlan]:
    return [ShardPlan(source, first_index + n, input_ids[i: i + inputs_per_shard])
            for n, i in enumerate(range(0, len(input_ids), inputs_per_shard))]


class ShardSink:
    """Collects terminal items from the stream and commits each shard once all of its inputs are complete."""

    def __init__(self, output: str, shards: list[ShardPlan], committed: CommittedState, package_version: str,
                 config_hash: str, on_commit=None, on_input_done=None):
        self.fs, self.root = _fs(output)
        self.fs.makedirs(f"{self.root}/shards", exist_ok=True)
        self.package_version, self.config_hash = package_version, config_hash
        self.shard_of: dict[tuple[str, str], ShardPlan] = {}
        self.plans = {p.name: p for p in shards}
        for plan in shards:
            for iid in plan.input_ids:
                self.shard_of[(plan.source, iid)] = plan
        self.pending_inputs = {p.name: set(p.input_ids) for p in shards}
        self.items: dict[str, dict[str, Item]] = defaultdict(dict)  # shard -> key -> item
        self.weight: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
        self.committed_keys = set(committed.success_keys)
        self.on_commit, self.on_input_done = on_commit, on_input_done
        self.failure_reasons: Counter = Counter()  # "stage: reason" -> count, filtered and failed rows
        self.failed_inputs: set[tuple[str, str]] = set()
        self.stats = Counter()
        self.started = time.time()
        self.committed_shards: list[str] = []
        self.done_shards: set[str] = set()
        self.duplicates = 0  # items seen again (Ray's at-least-once execution) and dropped
        for plan in shards:
            if not plan.input_ids:
                self._commit(plan)

    def add(self, item: Item) -> None:
        plan = self.shard_of.get((item.source, item.input_id))
        if plan is None:
            raise RuntimeError(f"item {item.key} from unplanned input {item.source}/{item.input_id}")
        if plan.name in self.done_shards:
            self.duplicates += 1
            return  # re-emitted (retried task, reconstructed block) after its shard was committed: written once
        bucket = self.items[plan.name]
        if item.key in bucket:
            self.duplicates += 1
            return  # a retried task re-emitted it: counted once
        bucket[item.key] = item
        ident = (item.source, item.input_id)
        self.weight[ident] += item.weight
        if self.weight[ident] > 1:
            raise RuntimeError(f"input {item.input_id} of {item.source} over-counted: stage emitted duplicate keys")
        if item.status in (FAILED, FILTERED):
            self.failure_reasons[f"{item.status} at {item.stage}: {_reason_class(item.reason)}"] += 1
            if item.status == FAILED:
                self.failed_inputs.add(ident)
        if self.weight[ident] == 1:
            if self.on_input_done:
                self.on_input_done()
            self.pending_inputs[plan.name].discard(item.input_id)
            if not self.pending_inputs[plan.name]:
                self._commit(plan)

    def finish(self) -> None:
        """End of stream: an input that never completed lost items inside a stage — record that, never drop."""
        for name, pending in list(self.pending_inputs.items()):
            if not pending:
                continue
            plan = self.plans[name]
            for iid in sorted(pending):
                missing = 1 - self.weight[(plan.source, iid)]
                # Keyed by the input (stable across runs, unique per input), never by arrival order.
                stub = Item(key=f"{make_key(plan.source, iid)}_lost", source=plan.source, input_id=iid,
                            weight=missing)
                stub.fail("pipeline", f"lost: {float(missing):.3f} of this input's output never reached the sink "
                                      "(its Ray task failed after all retries: worker crash, OOM kill or node loss)")
                self.items[name][stub.key] = stub
                # Counted like any failure: in the report by reason and against --max-failed-fraction.
                self.failure_reasons[f"{FAILED} at pipeline: {_reason_class(stub.reason)}"] += 1
                self.failed_inputs.add((plan.source, iid))
            self.pending_inputs[name] = set()
            self._commit(plan)

    # ---------------------------------------------------------------------------------------------- writing

    def _commit(self, plan: ShardPlan) -> None:
        t0 = time.time()
        self.done_shards.add(plan.name)
        items = sorted(self.items.pop(plan.name, {}).values(), key=lambda it: it.key)
        base = f"{self.root}/shards/{plan.name}"
        rows, success_keys, counts = [], [], Counter()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for it in items:
                status = SUCCESS if it.status == OK else it.status
                meta_json = sample_json(it, self.package_version, self.config_hash)
                if status == SUCCESS:
                    if it.key in self.committed_keys:
                        continue  # already committed by an earlier shard: exactly-once output
                    missing = [k for k in ("mp4", "jpg", "caption") if k not in it.data]
                    if missing:
                        it.fail("sink", f"item reached the sink without {missing}: the recipe must end with caption_select and encode")
                        status = FAILED
                    else:
                        caption = " ".join(str(it.data["caption"]).split())
                        for ext, payload in (("mp4", it.data["mp4"]), ("jpg", it.data["jpg"]),
                                             ("txt", caption.encode("utf-8")),
                                             ("json", json.dumps(meta_json, ensure_ascii=False, sort_keys=True).encode())):
                            info = tarfile.TarInfo(f"{it.key}.{ext}")
                            info.size, info.mtime, info.mode = len(payload), 0, 0o644
                            tar.addfile(info, io.BytesIO(payload))
                        success_keys.append(it.key)
                        self.committed_keys.add(it.key)
                counts[status] += 1
                rows.append({"key": it.key, "source": it.source, "input_id": it.input_id, "status": status,
                             "stage": it.stage, "reason": it.reason, "shard": plan.name,
                             "metadata": json.dumps(meta_json, ensure_ascii=False, sort_keys=True)})
        tar_bytes = buf.getvalue()
        with self.fs.open(base + ".tar.tmp", "wb") as f:
            f.write(tar_bytes)
        self.fs.mv(base + ".tar.tmp", base + ".tar")
        table = pd.DataFrame(rows, columns=STATUS_COLUMNS)
        with self.fs.open(base + ".parquet.tmp", "wb") as f:
            table.to_parquet(f, index=False)
        self.fs.mv(base + ".parquet.tmp", base + ".parquet")
        stats = {"shard": plan.name, "source": plan.source, "inputs": len(plan.input_ids), "rows": len(rows),
                 "samples": len(success_keys), "counts": dict(counts), "tar_bytes": len(tar_bytes),
                 "success_keys": success_keys, "input_ids": plan.input_ids, "config_hash": self.config_hash,
                 "package_version": self.package_version, "committed_at": time.time(),
                 "seconds_since_start": round(time.time() - self.started, 3), "write_seconds": round(time.time() - t0, 3)}
        with self.fs.open(base + "_stats.json.tmp", "w") as f:
            json.dump(stats, f, indent=1)
        self.fs.mv(base + "_stats.json.tmp", base + "_stats.json")
        self.stats.update(counts)
        self.committed_shards.append(plan.name)
        if self.on_commit:
            self.on_commit(plan, counts)


def write_dataset_info(output: str, resolved: dict[str, Any], package_version: str, config_hash: str,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
    fs, root = _fs(output)
    rows = read_status(output)
    totals: dict[str, Any] = {"rows": int(len(rows))}
    for status in (SUCCESS, FILTERED, FAILED):
        totals[status] = int((rows["status"] == status).sum()) if len(rows) else 0
    per_source = {}
    for src, grp in rows.groupby("source") if len(rows) else []:
        per_source[src] = {s: int((grp["status"] == s).sum()) for s in (SUCCESS, FILTERED, FAILED)}
    info = {"schema_version": SCHEMA_VERSION, "package_version": package_version, "config_hash": config_hash,
            "format": {"members": ["mp4", "jpg", "txt", "json"], "shards": "shards/{source}-{index:06d}.tar"},
            "totals": totals, "sources": per_source,
            "shards": sorted(p.rsplit("/", 1)[-1][: -len("_stats.json")] for p in fs.glob(f"{root}/shards/*_stats.json")),
            "resolved": resolved, **(extra or {})}
    with fs.open(f"{root}/dataset_info.json.tmp", "w") as f:
        json.dump(info, f, indent=1, default=str)
    fs.mv(f"{root}/dataset_info.json.tmp", f"{root}/dataset_info.json")
    return info


def iter_samples(output: str) -> Iterable[dict[str, Any]]:
    """Committed samples (key, mp4, jpg, txt, json) in shard order: for inspect and tests."""
    fs, root = _fs(output)
    for stats in sorted(fs.glob(f"{root}/shards/*_stats.json")):
        with fs.open(stats[: -len("_stats.json")] + ".tar", "rb") as f, tarfile.open(fileobj=f) as tar:
            sample: dict[str, Any] = {}
            for m in tar:
                key, _, ext = m.name.partition(".")
                if sample and sample["key"] != key:
                    yield sample
                    sample = {}
                sample["key"] = key
                sample[ext] = tar.extractfile(m).read()
            if sample:
                yield sample
