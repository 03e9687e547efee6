"""The partition task: expand one input partition, run its items through the recipe, write and commit its shard.

Runs as a Ray task on any node (`write_partition`); the driver gets back a `PartitionResult` (counts, reasons,
sizes: a few hundred bytes), never items. Deterministic: the same partition and the same committed state give
the same shard name and the same samples in the same order, so a retried task rewrites the same shard
atomically. What earlier runs committed for this partition is read here, on the worker: shards failing their
size/sha256 check are set aside and the partition is rebuilt; inputs already having rows are skipped (unless
`--retry-failed` and failed), and success keys already in a tar are never written again (exactly once).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterator

from vidrd_data.items import FAILED, FILTERED, OK, SUCCESS, Item, make_key
from vidrd_data.runtime import TASK_RETRIES, StepPlan, await_pools, pack, run_stages, task_resources, unpack
from vidrd_data.sample_json import sample_json
from vidrd_data.reasons import reason_rule
from vidrd_data.sink import set_aside, status_parquet
from vidrd_data.sources.base import Partition, SourceReader
from vidrd_data.stages.base import StageContext
from vidrd_format.shards import CommittedShard, ShardWriter, parse_stem, shard_files, shard_stem, url_to_fs, \
    verify_shard


@dataclass
class PartitionJob:
    reader: SourceReader
    partition: Partition
    steps: list[StepPlan]
    ctx: StageContext
    pools: dict[int, list]
    output: str
    committed: list[str] = field(default_factory=list)  # this partition's committed stems, oldest first
    retry_failed: bool = False
    max_pending: int | None = None  # --max-items: process at most this many inputs
    max_inputs: int | None = None  # source `limit`: consider only the partition's first N inputs
    chunk_items: int = 32
    chunks_in_flight: int = 4
    verify: str = "sha256"
    lost: str | None = None  # the partition's own task died: record its inputs as failed with this reason
    build_id: str = ""  # one per build: worker-side caches never outlive it
    task_retries: int = TASK_RETRIES  # the driver's setting (a worker's environment may differ)
    pools_confirmed: bool = True  # False: submitted while the source's model actors were still loading
    expected: list = field(default_factory=list)  # refs of the driver's dedup `expect` calls for this partition


@dataclass
class PartitionResult:
    source: str
    index: int
    stem: str | None = None  # the shard written by this run (None: nothing to do)
    inputs: int = 0  # inputs given an outcome by this run
    seen: int = 0  # inputs of the partition considered (for a source `limit`)
    retried: int = 0  # of `inputs`, those whose earlier outcome was failed
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    failed_inputs: int = 0
    samples: int = 0
    tar_bytes: int = 0
    complete: bool = True
    set_aside: list[str] = field(default_factory=list)
    writer: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _writer_identity() -> dict[str, Any]:
    ident = {"hostname": socket.gethostname(), "pid": os.getpid(), "node_id": None}
    try:
        import ray

        if ray.is_initialized():
            ident["node_id"] = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray (tests, benchmarks)
        pass
    return ident


@dataclass
class Prior:
    """What a partition's committed shards already hold (nothing, for a fresh output)."""
    effective: list = field(default_factory=list)  # (input id, status): each input's rows in its latest shard
    written_keys: set = field(default_factory=set)  # sample keys any shard already holds
    stats: list = field(default_factory=list)  # the shards' stats, oldest first

    @property
    def done(self) -> set:
        return {i for i, _ in self.effective}

    @property
    def failed(self) -> set:
        return {i for i, status in self.effective if status == FAILED}


def _prior(fs, sdir: str, stems: list[str]) -> Prior:
    if not stems:  # a fresh partition: pandas (~1 CPU-s to import in each writer process) is not needed
        return Prior()
    import pandas as pd  # only a partition with earlier shards (a resumed or retried build) reads them

    frames, stats = [], []
    for stem in stems:
        files = shard_files(sdir, stem)
        stats.append(json.loads(fs.cat_file(files.stats)))
        with fs.open(files.parquet, "rb") as f:
            frames.append(pd.read_parquet(f))
    rows = pd.concat(frames, ignore_index=True)  # stems oldest first: the last shard of an input wins
    if rows.empty:
        return Prior(stats=stats)
    eff = rows[rows["shard"] == rows.groupby("input_id")["shard"].transform("last")]
    return Prior(effective=list(zip(eff["input_id"], eff["status"])),
                 written_keys=set(rows.loc[rows["status"] == SUCCESS, "key"]), stats=stats)


def write_partition(job: PartitionJob) -> PartitionResult:
    t0 = time.time()
    p = job.partition
    res = PartitionResult(p.source, p.index, writer=_writer_identity())
    fs, root = url_to_fs(job.output)
    sdir = f"{root}/shards"
    committed = list(job.committed)
    for stem in committed:
        problem = verify_shard(CommittedShard(shard_files(sdir, stem), json.loads(fs.cat_file(shard_files(sdir, stem).stats)), fs),
                               job.verify)
        if problem:
            res.set_aside = set_aside(fs, sdir, committed, problem)
            committed = []
            break
    prior = _prior(fs, sdir, committed)
    last = prior.stats[-1] if prior.stats else None
    if last and last.get("partition_complete") and job.max_inputs is None and not job.lost and \
            not (job.retry_failed and last.get("partition_failed_inputs")):
        res.seen = int(last.get("partition_inputs", 0))
        res.seconds = round(time.time() - t0, 3)
        close_dedup(job, [])
        return res  # committed, verified, nothing to retry: the partition is not even expanded
    done, failed_before, written_keys = prior.done, prior.failed, prior.written_keys
    redo = failed_before if job.retry_failed else set()

    pending: list[Item] = []
    total = 0
    for it in job.reader.expand(p):
        if job.max_inputs is not None and total >= job.max_inputs:
            break
        total += 1
        if it.input_id in done and it.input_id not in redo:
            continue
        if job.max_pending is not None and len(pending) >= job.max_pending:
            res.complete = False
            continue
        pending.append(it)
    res.seen = total
    if job.max_inputs is not None:
        res.complete = False  # inputs past the limit exist or may exist
    if not pending and committed:
        res.seconds = round(time.time() - t0, 3)
        close_dedup(job, [])
        return res
    retry_no = parse_stem(committed[-1])[2] + 1 if committed else 0
    stem = shard_stem(p.source, p.index, retry_no)
    rows: list[dict] = []
    weight: dict[str, Fraction] = Counter()
    claims: list[tuple[int, Item, dict]] = []  # (row, item, claim): dedup verdicts to get before the commit
    with ShardWriter(sdir, stem, fs) as w:
        for it in _outcomes(job, pending):
            claim = it.data.pop("dedup_claim", None)
            _emit(job, w, stem, it, rows, written_keys, weight, res)
            if claim is not None and rows[-1]["status"] == SUCCESS:
                it.data = {}  # written: keep only what a late verdict's row needs
                claims.append((len(rows) - 1, it, claim))
        for it in pending:  # a stage that dropped items: the rest of that input is recorded, never lost silently
            missing = 1 - weight[it.input_id]
            if missing > 0:
                stub = Item(key=f"{make_key(it.source, it.input_id)}_lost", source=it.source, input_id=it.input_id,
                            weight=missing)
                stub.fail("pipeline", f"lost: {float(missing):.3f} of this input's output never reached the writer")
                _emit(job, w, stem, stub, rows, written_keys, weight, res)
        _late_duplicates(job, w, rows, claims, res)
        if not job.pools_confirmed and not job.lost:  # submitted before the driver saw the models load:
            await_pools(job.pools, job.steps)  # one that never loads stops the build, this shard uncommitted
        new_ids = {it.input_id for it in pending}
        keep = [(i, status) for i, status in prior.effective if i not in new_ids]  # earlier rows still in force
        counts = Counter(status for _, status in keep) + Counter(r["status"] for r in rows)
        failed_ids = {i for i, status in keep if status == FAILED}
        failed_ids |= {r["input_id"] for r in rows if r["status"] == FAILED}
        res.inputs, res.retried = len(pending), len(new_ids & failed_before)
        res.failed_inputs = len({r["input_id"] for r in rows if r["status"] == FAILED})
        stats = {"source": p.source, "partition": p.index, "retry": retry_no, "where": p.where,
                 "inputs": len(pending), "rows": len(rows), "counts": dict(Counter(r["status"] for r in rows)),
                 "partition_inputs": total, "partition_complete": res.complete and not job.lost,
                 "partition_counts": dict(counts), "partition_failed_inputs": len(failed_ids),
                 "keys_sha256": hashlib.sha256("\n".join(r["key"] for r in rows).encode()).hexdigest(),
                 "config_hash": job.ctx.config_hash, "package_version": job.ctx.package_version,
                 "committed_at": time.time(), "writer": res.writer, "seconds": round(time.time() - t0, 3)}
        marker = w.commit(status_parquet(rows), stats)
    res.stem, res.samples, res.tar_bytes = stem, marker["samples"], marker["files"]["tar"]["bytes"]
    res.seconds = round(time.time() - t0, 3)
    return res


def close_dedup(job: PartitionJob, claims: list[tuple[int, Item, dict]]) -> dict[str, Any]:
    """Hand this partition's dedup claims (emit order) to each index its recipe uses; with claims, wait for the
    verdicts (they come in partition order). Returns {key: Match} of the samples found to be copies."""
    from vidrd_data.stages.curation_dedup_index import partition_verdicts, recipe_indexes

    found: dict[str, Any] = {}
    if job.expected:  # the index has registered this partition before it is closed
        import ray

        ray.get(job.expected)
    for name in recipe_indexes(job.steps, job.ctx.run_id):
        mine = [(it.key, c["fp"]) for _, it, c in claims if c["index"] == name]
        for (key, _), match in zip(mine, partition_verdicts(name, job.partition.source, job.partition.index, mine)):
            if match is not None:
                found[key] = match
    return found


def _late_duplicates(job: PartitionJob, w: ShardWriter, rows: list, claims: list, res: PartitionResult) -> None:
    """Samples an earlier partition (in build order) turned out to hold already: out of the tar, rows say so."""
    from vidrd_data.stages.curation_dedup import mark_duplicate

    found = close_dedup(job, claims)
    if not found:
        return
    w.drop(set(found))
    for row_no, it, _ in claims:
        match = found.get(it.key)
        if match is None:
            continue
        mark_duplicate(it, match)
        meta = sample_json(it, job.ctx.package_version, job.ctx.config_hash)
        rows[row_no].update(status=FILTERED, stage=it.stage, reason=it.reason,
                            metadata=json.dumps(meta, ensure_ascii=False, sort_keys=True))
        res.counts[SUCCESS] -= 1
        res.counts[FILTERED] += 1
        res.reasons[f"{FILTERED} at {it.stage}: {reason_rule(it.reason)}"] += 1


_REMOTE: list = []


def _remote_run_stages():
    import ray

    if not _REMOTE:  # one remote function per worker process (not re-exported for every partition)
        _REMOTE.append(ray.remote(run_stages))
    return _REMOTE[0]


def _outcomes(job: PartitionJob, pending: list[Item]) -> Iterator[Item]:
    """Terminal items of the pending inputs, in input order: chunks of live items run as Ray tasks, a bounded
    number in flight; items that failed while listing pass straight through."""
    if job.lost:
        for it in pending:
            yield it.fail("pipeline", job.lost) if it.alive else it
        return
    import ray

    remote = _remote_run_stages().options(max_retries=job.task_retries, **task_resources(job.steps))
    queue: deque = deque()  # (ref | None, items): None for a chunk of already-terminal items
    chunk: list[Item] = []
    n = 0

    def flush():
        nonlocal chunk, n
        if chunk:
            queue.append((remote.remote(pack(chunk), job.steps, job.ctx, job.pools, job.partition.index + n, job.build_id), chunk))
            n += 1
            chunk = []

    def drain(limit: int) -> Iterator[Item]:
        while len(queue) > limit:
            ref, items = queue.popleft()
            if ref is None:
                yield from items
                continue
            try:
                yield from unpack(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - the task failed after all its retries
                why = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
                for it in items:
                    yield Item(key=f"{make_key(it.source, it.input_id)}_lost", source=it.source,
                               input_id=it.input_id, weight=it.weight).fail(
                        "pipeline", f"lost: its Ray task failed after all retries (worker crash, OOM kill or "
                                    f"node loss): {type(exc).__name__}: {why}")

    for it in pending:
        if not it.alive:
            flush()
            queue.append((None, [it]))
        else:
            chunk.append(it)
            if len(chunk) >= job.chunk_items:
                flush()
        yield from drain(job.chunks_in_flight)
    flush()
    yield from drain(0)


def _emit(job: PartitionJob, w: ShardWriter, stem: str, it: Item, rows: list, written: set, weight, res) -> None:
    status = SUCCESS if it.status == OK else it.status
    weight[it.input_id] += it.weight
    if weight[it.input_id] > 1:
        raise RuntimeError(f"input {it.input_id} of {it.source} over-counted: a stage emitted duplicate keys")
    meta = sample_json(it, job.ctx.package_version, job.ctx.config_hash)
    if status == SUCCESS:
        missing = [k for k in ("mp4", "jpg", "caption") if k not in it.data]
        if missing:
            it.fail("writer", f"item reached the writer without {missing}: the recipe must end with caption_select and encode")
            status = FAILED
        elif it.key not in written:  # already in a tar of this partition (an earlier run): written once
            caption = " ".join(str(it.data["caption"]).split())
            w.add(it.key, {"mp4": it.data["mp4"], "jpg": it.data["jpg"], "txt": caption.encode("utf-8"),
                           "json": json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()})
            written.add(it.key)
    if status in (FAILED, FILTERED):
        res.reasons[f"{status} at {it.stage}: {reason_rule(it.reason)}"] += 1  # by rule, never by its numbers
    res.counts[status] += 1
    rows.append({"key": it.key, "source": it.source, "input_id": it.input_id, "status": status, "stage": it.stage,
                 "reason": it.reason, "shard": stem, "metadata": json.dumps(meta, ensure_ascii=False, sort_keys=True)})
