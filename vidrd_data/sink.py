"""The output folder as the build sees it: status rows, committed partitions, leftovers, dataset_info.json.

  shards/{source}-{NNNNNN}[-rNN].tar        samples of input partition NNNNNN (vidrd_format.shards: members, order)
  shards/{source}-{NNNNNN}[-rNN].parquet    one status row per attempted item (success / filtered / failed + reason)
  shards/{source}-{NNNNNN}[-rNN]_stats.json written LAST: the commit marker (counts, sizes, sha256, writer node)
  dataset_info.json                         schema, resolved manifest + recipes, version, totals

A partition's first shard has no suffix; a later run that completes or retries part of it (`--max-items`,
`--retry-failed`) writes `-r01`, `-r02`...: an input's rows in a later shard supersede its earlier rows. The
shards themselves are written by the workers (`vidrd_data.writer`); the driver only lists and cleans.
"""

from __future__ import annotations

import io
import json
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterable

from vidrd_data.items import FAILED, FILTERED, SUCCESS
from vidrd_format.shards import (SCHEMA_VERSION, SHARD_DIR, committed_shards, own_file, parse_stem, shard_files,
                                 url_to_fs)

if TYPE_CHECKING:
    import pandas as pd

STATUS_COLUMNS = ["key", "source", "input_id", "status", "stage", "reason", "shard", "metadata"]


def shard_dir(output: str) -> tuple[Any, str]:
    fs, root = url_to_fs(output)
    return fs, f"{root}/{SHARD_DIR}"


def status_parquet(rows: list[dict[str, Any]]) -> bytes:
    """The rows as parquet, every column a string (null where a row has none). pyarrow directly: a writer task's
    fresh worker process would otherwise import pandas for it (~1 CPU-s before the build's first shard)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({c: pa.array([None if r.get(c) is None else str(r[c]) for r in rows], type=pa.string())
                      for c in STATUS_COLUMNS})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def committed_by_partition(output: str) -> dict[tuple[str, int], list[str]]:
    """(source, partition index) -> committed stems, oldest (no suffix) first. Names only: no file is read."""
    fs, sdir = shard_dir(output)
    out: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
    if not fs.exists(sdir):
        return {}
    for path in fs.ls(sdir, detail=False):
        own = own_file(path.rsplit("/", 1)[-1])
        if own and own[1] == "_stats.json" and not own[2]:
            source, index, retry = parse_stem(own[0])
            out[(source, index)].append((retry, own[0]))
    return {k: [stem for _, stem in sorted(v)] for k, v in out.items()}


def cleanup_leftovers(output: str) -> list[str]:
    """Delete what a killed build left: temporary files and shard files without a commit marker. Only names a
    build writes are considered; anything else in the folder (a user's file) is left alone."""
    fs, sdir = shard_dir(output)
    if not fs.exists(sdir):
        return []
    names = [p.rsplit("/", 1)[-1] for p in fs.ls(sdir, detail=False)]
    committed = {own_file(n)[0] for n in names if own_file(n) and own_file(n)[1] == "_stats.json" and not own_file(n)[2]}
    removed = []
    for n in names:
        own = own_file(n)
        if own and (own[2] or own[0] not in committed):
            fs.rm(f"{sdir}/{n}")
            removed.append(n)
    return removed


def remove_own_shards(output: str) -> list[str]:
    """--no-resume: delete every file a build wrote (and dataset_info.json); never a foreign file."""
    fs, sdir = shard_dir(output)
    removed = []
    if fs.exists(sdir):
        for p in fs.ls(sdir, detail=False):
            if own_file(p.rsplit("/", 1)[-1]):
                fs.rm(p)
                removed.append(p)
    info = sdir.rsplit("/", 1)[0] + "/dataset_info.json"
    if fs.exists(info):
        fs.rm(info)
    return removed


def set_aside(fs, sdir: str, stems: list[str], why: str) -> list[str]:
    """Move a partition's shards to OUT/set_aside/ (kept for inspection, no longer part of the output)."""
    dest = sdir.rsplit("/", 1)[0] + f"/set_aside/{int(time.time())}"
    fs.makedirs(dest, exist_ok=True)
    moved = []
    for stem in stems:
        files = shard_files(sdir, stem)
        for path in (files.stats, files.tar, files.parquet):  # the marker first: the shard is uncommitted at once
            if fs.exists(path):
                fs.mv(path, f"{dest}/{path.rsplit('/', 1)[-1]}")
                moved.append(path.rsplit("/", 1)[-1])
    with fs.open(f"{dest}/WHY.txt", "a") as f:
        f.write(f"{', '.join(stems)}: {why}\n")
    return moved


def read_status(output: str) -> pd.DataFrame:
    """Every committed status row; for an input with rows in several shards of its partition, the latest wins."""
    import pandas as pd

    frames = []
    for shard in committed_shards(output):
        with shard.fs.open(shard.files.parquet, "rb") as f:
            df = pd.read_parquet(f)
        df["_t"], df["_r"] = shard.stats.get("committed_at", 0), shard.stats.get("retry", 0)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=STATUS_COLUMNS)
    df = pd.concat(frames, ignore_index=True).sort_values(["_t", "_r"], kind="stable")
    latest_shard = df.groupby(["source", "input_id"])["shard"].transform("last")
    return df[df["shard"] == latest_shard].drop(columns=["_t", "_r"]).reset_index(drop=True)


def write_dataset_info(output: str, resolved: dict[str, Any], package_version: str, config_hash: str,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Totals from the commit markers alone (each partition's latest shard records its effective counts)."""
    fs, sdir = shard_dir(output)
    root = sdir.rsplit("/", 1)[0]
    latest: dict[tuple[str, int], dict] = {}
    shards = committed_shards(output)
    for shard in shards:
        source, index, retry = parse_stem(shard.stem)
        if (source, index) not in latest or retry >= latest[(source, index)].get("retry", 0):
            latest[(source, index)] = shard.stats
    per_source: dict[str, dict[str, int]] = defaultdict(lambda: {SUCCESS: 0, FILTERED: 0, FAILED: 0})
    for (source, _), stats in latest.items():
        for status, n in (stats.get("partition_counts") or {}).items():
            per_source[source][status] = per_source[source].get(status, 0) + int(n)
    totals = {s: sum(v.get(s, 0) for v in per_source.values()) for s in (SUCCESS, FILTERED, FAILED)}
    totals["rows"] = sum(totals.values())
    info = {"schema_version": SCHEMA_VERSION, "package_version": package_version, "config_hash": config_hash,
            "format": {"members": ["mp4", "jpg", "txt", "json"],
                       "shards": "shards/{source}-{partition:06d}[-r{retry:02d}].tar"},
            "totals": totals, "sources": dict(per_source), "shards": [s.stem for s in shards],
            "resolved": resolved, **(extra or {})}
    with fs.open(f"{root}/dataset_info.json.tmp", "w") as f:
        json.dump(info, f, indent=1, default=str)
    fs.mv(f"{root}/dataset_info.json.tmp", f"{root}/dataset_info.json")
    return info


def recorded_config_hash(output: str) -> str | None:
    """The config hash the output was built with (dataset_info.json, else any commit marker), or None."""
    fs, sdir = shard_dir(output)
    root = sdir.rsplit("/", 1)[0]
    if fs.exists(f"{root}/dataset_info.json"):
        return json.loads(fs.cat_file(f"{root}/dataset_info.json")).get("config_hash")
    for stems in committed_by_partition(output).values():
        return json.loads(fs.cat_file(shard_files(sdir, stems[-1]).stats)).get("config_hash")
    return None


def iter_samples(output: str) -> Iterable[dict[str, Any]]:
    """Committed samples (key, mp4, jpg, txt, json) in shard order: for inspect and tests."""
    import tarfile

    for shard in committed_shards(output):
        with shard.fs.open(shard.files.tar, "rb") as f, tarfile.open(fileobj=f) as tar:
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
